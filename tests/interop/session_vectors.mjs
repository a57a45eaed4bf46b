// tests/interop/session_vectors.mjs [OUT.json]: independent test vectors for the session key
// schedule and envelopes (docs/PROTOCOL.md, "Session key schedule" and "Session envelopes").
//
// Written from the protocol text, not from qsapi's code: HKDF-SHA-384 from node:crypto (hkdfSync
// for Extract+Expand; Expand alone as RFC 5869 2.3 over node:crypto's HMAC, cross-checked against
// hkdfSync), HMAC-SHA-384 and AES-256-GCM from node:crypto, XChaCha20-Poly1305 from
// @noble/ciphers. Deterministic: the same inputs always give the same file, so ctest re-runs this
// script and compares its output with tests/data/session/vectors.json byte for byte.
//
// Without an argument the JSON goes to stdout.
import { createCipheriv, createHash, createHmac, hkdfSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';

const ascii = (s) => Buffer.from(s, 'latin1');
const hex = (b) => Buffer.from(b).toString('hex');
const u32 = (v) => { const b = Buffer.alloc(4); b.writeUInt32BE(v); return b; };
const u64 = (v) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(v)); return b; };
const u16 = (v) => { const b = Buffer.alloc(2); b.writeUInt16BE(v); return b; };
const pattern = (start, n) => Buffer.from(Array.from({ length: n }, (_, i) => (start + i) & 0xff));

// RFC 5869 2.2 / 2.3 with SHA-384.
const extract = (salt, ikm) => createHmac('sha384', salt).update(ikm).digest();
function expand(prk, info, length) {
  const out = [];
  let t = Buffer.alloc(0);
  for (let i = 1; Buffer.concat(out).length < length; i++) {
    t = createHmac('sha384', prk).update(Buffer.concat([t, info, Buffer.from([i])])).digest();
    out.push(t);
  }
  return Buffer.concat(out).subarray(0, length);
}
function hkdf(ikm, salt, info, length) {
  const viaNode = Buffer.from(hkdfSync('sha384', ikm, salt, info, length));
  const viaParts = expand(extract(salt, ikm), info, length);
  if (!viaNode.equals(viaParts)) throw new Error('HKDF self-check failed');
  return viaNode;
}

const SUITES = { 'AES-256-GCM': 1, 'XChaCha20-Poly1305': 2 };
const NONCE = { 1: 12, 2: 24 };
const SOURCES = { 'tls-exporter': 1, qkd: 2, 'qrng-initiator': 3, 'qrng-responder': 4 };
const info = (label, ctx) => Buffer.concat([ascii(label), Buffer.from([0]), ctx]);
const lp = (secret) => Buffer.concat([u16(secret.length), secret]);

// "Session key schedule".
function sessionKeys({ sessionId, suite, exporter, qkd, qrngI, qrngR, contextHash }) {
  const sources = ['tls-exporter'];
  const parts = [lp(exporter)];
  if (qkd.length) { sources.push('qkd'); parts.push(lp(qkd)); }
  if (qrngI.length) { sources.push('qrng-initiator'); parts.push(lp(qrngI)); }
  if (qrngR.length) { sources.push('qrng-responder'); parts.push(lp(qrngR)); }
  const ikm = Buffer.concat(parts);
  const salt = ascii('qsapi session v1 extract');
  const sourceList = Buffer.from([sources.length, ...sources.map((s) => SOURCES[s])]);
  const ctx = Buffer.concat([sessionId, Buffer.from([suite]), sourceList, contextHash]);
  return {
    sources,
    ikm,
    sourceList,
    epochSecret: hkdf(ikm, salt, info('qsapi session v1 epoch 0', ctx), 48),
    confirmI: hkdf(ikm, salt, info('qsapi session v1 confirm initiator', ctx), 48),
    confirmR: hkdf(ikm, salt, info('qsapi session v1 confirm responder', ctx), 48),
  };
}

const confirmMac = (key, initiator, contextHash) =>
  createHmac('sha384', key)
    .update(Buffer.concat([ascii('qsapi session confirm v1'), Buffer.from([initiator ? 1 : 2]), contextHash]))
    .digest();

function epochKeys(secret, suite, sessionId, epoch) {
  const ectx = Buffer.concat([sessionId, Buffer.from([suite]), u32(epoch)]);
  return {
    keyI: expand(secret, info('qsapi session v1 key initiator', ectx), 32),
    keyR: expand(secret, info('qsapi session v1 key responder', ectx), 32),
    nonceI: expand(secret, info('qsapi session v1 nonce initiator', ectx), NONCE[suite]),
    nonceR: expand(secret, info('qsapi session v1 nonce responder', ectx), NONCE[suite]),
  };
}

function nextEpochSecret(secret, freshQkd, sessionId, nextEpoch) {
  const ctx = Buffer.concat([sessionId, u32(nextEpoch), Buffer.from([freshQkd.length ? 1 : 0])]);
  return hkdf(lp(freshQkd), secret, info('qsapi session v1 ratchet', ctx), 48);
}

// "Session envelopes".
function envelope({ suite, sessionId, epoch, seq, key, prefix, plaintext, aad, stream }) {
  const flags = stream ? 0x01 | (stream.final ? 0x02 : 0) : 0;
  const header = Buffer.concat([
    Buffer.from([0x51, 0x45, 0x01, suite, flags]), sessionId, u32(epoch), u64(seq), u32(plaintext.length + 16),
    ...(stream ? [u64(stream.id), u32(stream.index)] : []),
  ]);
  const nonce = Buffer.from(prefix);
  const s = u64(seq);
  for (let i = 0; i < 8; i++) nonce[nonce.length - 8 + i] ^= s[i];
  const ad = Buffer.concat([header, aad]);
  let ct;
  if (suite === 1) {
    const c = createCipheriv('aes-256-gcm', key, nonce);
    c.setAAD(ad);
    ct = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
  } else {
    ct = Buffer.from(xchacha20poly1305(key, nonce, ad).encrypt(plaintext));
  }
  return Buffer.concat([header, ct]);
}

// The fixed inputs.
const sessionId = pattern(0x00, 16);
const exporter = pattern(0x20, 48);
const qkd = pattern(0x80, 64);  // two 256-bit QKD keys
const qrngI = pattern(0xc0, 32);
const qrngR = pattern(0xe0, 32);
const contextHash = createHash('sha384').update('qsapi session vectors: establishment transcript').digest();
const freshQkd = pattern(0x40, 32);  // mixed into the ratchet step that enters epoch 2

const CASES = [
  { name: 'all sources, AES-256-GCM', suite: 'AES-256-GCM', qkd, qrngI, qrngR },
  { name: 'TLS exporter only, XChaCha20-Poly1305', suite: 'XChaCha20-Poly1305', qkd: Buffer.alloc(0), qrngI: Buffer.alloc(0), qrngR: Buffer.alloc(0) },
  { name: 'TLS exporter and QKD, XChaCha20-Poly1305', suite: 'XChaCha20-Poly1305', qkd: qkd.subarray(0, 32), qrngI: Buffer.alloc(0), qrngR: Buffer.alloc(0) },
  { name: 'TLS exporter and initiator QRNG, AES-256-GCM', suite: 'AES-256-GCM', qkd: Buffer.alloc(0), qrngI, qrngR: Buffer.alloc(0) },
];

function buildCase(c) {
  const suite = SUITES[c.suite];
  const keys = sessionKeys({ sessionId, suite, exporter, qkd: c.qkd, qrngI: c.qrngI, qrngR: c.qrngR, contextHash });
  const e0 = epochKeys(keys.epochSecret, suite, sessionId, 0);
  const s1 = nextEpochSecret(keys.epochSecret, Buffer.alloc(0), sessionId, 1);
  const s2 = nextEpochSecret(s1, freshQkd, sessionId, 2);
  const e2 = epochKeys(s2, suite, sessionId, 2);

  // The operations of the two channels, in order; each seal names the bytes it must produce.
  const steps = [];
  const seq = { initiator: 0, responder: 0 };
  const seal = (sender, epochKeysNow, epoch, plaintext, aad, stream) => {
    const initiator = sender === 'initiator';
    const env = envelope({
      suite, sessionId, epoch, seq: seq[sender], key: initiator ? epochKeysNow.keyI : epochKeysNow.keyR,
      prefix: initiator ? epochKeysNow.nonceI : epochKeysNow.nonceR, plaintext: ascii(plaintext), aad: ascii(aad), stream,
    });
    const op = stream ? (stream.final ? 'stream_finish' : 'stream_write') : 'seal';
    steps.push({
      op, sender, epoch, sequence: seq[sender], plaintext, aad,
      ...(stream ? { stream_id: stream.id, chunk_index: stream.index } : {}),
      envelope: hex(env), text: 'qse1:' + env.toString('base64url'),
    });
    seq[sender] += 1;
  };
  seal('initiator', e0, 0, 'hello, responder', '');
  seal('initiator', e0, 0, 'with associated data', 'route=/v1/orders');
  seal('responder', e0, 0, 'hello, initiator', '');
  seal('initiator', e0, 0, 'stream chunk 0', '', { id: 1, index: 0, final: false });
  seal('initiator', e0, 0, 'last', '', { id: 1, index: 1, final: true });
  // The initiator rotates twice; QKD material is supplied for epoch 2 on both sides.
  steps.push({ op: 'rotate', sender: 'initiator' });
  steps.push({ op: 'rotate', sender: 'initiator' });
  seq.initiator = 0;
  seal('initiator', e2, 2, 'epoch two', 'ad');
  // The responder follows to epoch 2 on opening the envelope above; its next envelope is epoch 2.
  seq.responder = 0;
  seal('responder', e2, 2, 'reply in epoch two', '');

  // "Fresh QKD keys at rotation": the responder, at epoch 1 by the ratchet alone, gets a RekeyOffer
  // (min_epoch 1, one key_ID) and binds the fresh key to epoch max(1 + 1, 1) = 2, whose secret is
  // s2 above; its confirmation is its first envelope of epoch 2, empty, with the offer as AAD.
  const keyId = '0b4b4d8c-1f6a-4d5e-9a3b-2c1d0e9f8a7b';
  const offer = Buffer.concat([Buffer.from([0x10, 0x01]), sessionId, u32(1), Buffer.from([1]), ascii(keyId)]);
  const confirm = envelope({
    suite, sessionId, epoch: 2, seq: 0, key: e2.keyR, prefix: e2.nonceR, plaintext: Buffer.alloc(0),
    aad: Buffer.concat([ascii('qsapi session v1 rekey confirm'), offer]),
  });
  const done = Buffer.concat([Buffer.from([0x11, 0x01]), sessionId, u32(2), confirm]);

  // "Re-establishment": the responder, at epoch 2 by the ratchet alone, gets a Reestablish naming
  // the session (min_epoch 3, qkd require / qrng prefer, one key_ID), answers Accept, and both derive
  // a new epoch 0 secret over the new link's exporter, a new QKD key and both randoms; it enters
  // epoch 3 with that secret as the ratchet's fresh material and seals its confirmation there.
  const reKeyId = '1b4b4d8c-1f6a-4d5e-9a3b-2c1d0e9f8a7b';
  const reRandomI = pattern(0x30, 32);
  const reRandomR = pattern(0x50, 32);
  const reSources = [SOURCES['tls-exporter'], SOURCES.qkd, SOURCES['qrng-initiator']];
  const reestablish = Buffer.concat([
    Buffer.from([0x04, 0x01]), sessionId, u32(3), Buffer.from([suite, 0x02, 0x01]), reRandomI,
    Buffer.from([reSources.length, ...reSources]), Buffer.from([1]), ascii(reKeyId),
  ]);
  const reAcceptSources = [...reSources, SOURCES['qrng-responder']];
  const reAccept = Buffer.concat([
    Buffer.from([0x02, 0x01]), sessionId, reRandomR, Buffer.from([reAcceptSources.length, ...reAcceptSources]),
  ]);
  const reContextHash = createHash('sha384').update(Buffer.concat([reestablish, reAccept])).digest();
  const reExporter = pattern(0x70, 48);
  const reQkd = pattern(0x90, 32);
  const reKeys = sessionKeys({ sessionId, suite, exporter: reExporter, qkd: reQkd, qrngI: reRandomI, qrngR: reRandomR,
    contextHash: reContextHash });
  const r2 = nextEpochSecret(s1, Buffer.alloc(0), sessionId, 2);
  const r3 = nextEpochSecret(r2, reKeys.epochSecret, sessionId, 3);
  const e3 = epochKeys(r3, suite, sessionId, 3);
  const reConfirm = envelope({
    suite, sessionId, epoch: 3, seq: 0, key: e3.keyR, prefix: e3.nonceR, plaintext: Buffer.alloc(0),
    aad: Buffer.concat([ascii('qsapi session v1 reestablish confirm'), reContextHash]),
  });
  const reDone = Buffer.concat([Buffer.from([0x11, 0x01]), sessionId, u32(3), reConfirm]);

  return {
    name: c.name,
    input: {
      session_id: hex(sessionId), suite: c.suite, tls_exporter: hex(exporter), qkd_key: hex(c.qkd),
      qrng_initiator: hex(c.qrngI), qrng_responder: hex(c.qrngR), context_hash: hex(contextHash),
    },
    sources: keys.sources,
    encoded_source_list: hex(keys.sourceList),
    ikm: hex(keys.ikm),
    epoch_secret: hex(keys.epochSecret),
    confirm_key_initiator: hex(keys.confirmI),
    confirm_key_responder: hex(keys.confirmR),
    confirm_mac_initiator: hex(confirmMac(keys.confirmI, true, contextHash)),
    confirm_mac_responder: hex(confirmMac(keys.confirmR, false, contextHash)),
    epochs: [
      { epoch: 0, secret: hex(keys.epochSecret), initiator_key: hex(e0.keyI), responder_key: hex(e0.keyR),
        initiator_nonce_prefix: hex(e0.nonceI), responder_nonce_prefix: hex(e0.nonceR) },
      { epoch: 1, fresh_qkd_key: '', secret: hex(s1) },
      { epoch: 2, fresh_qkd_key: hex(freshQkd), secret: hex(s2), initiator_key: hex(e2.keyI),
        responder_key: hex(e2.keyR), initiator_nonce_prefix: hex(e2.nonceI), responder_nonce_prefix: hex(e2.nonceR) },
    ],
    steps,
    fresh_key_agreement: {
      responder_epoch_before: 1, min_epoch: 1, key_ids: [keyId], fresh_qkd_key: hex(freshQkd), bound_epoch: 2,
      rekey_offer: hex(offer), confirm_envelope: hex(confirm), rekey_done: hex(done),
    },
    reestablishment: {
      responder_epoch_before: 2, min_epoch: 3, key_ids: [reKeyId], random_initiator: hex(reRandomI),
      random_responder: hex(reRandomR), tls_exporter: hex(reExporter), qkd_key: hex(reQkd),
      reestablish: hex(reestablish), accept: hex(reAccept), context_hash: hex(reContextHash),
      epoch_secret: hex(reKeys.epochSecret), bound_epoch: 3, epoch_3_secret: hex(r3),
      confirm_envelope: hex(reConfirm), rekey_done: hex(reDone),
    },
  };
}

const doc = {
  description: 'qsapi session key schedule and envelope vectors (docs/PROTOCOL.md). Generated by ' +
    'tests/interop/session_vectors.mjs from the protocol text with node:crypto (HKDF-SHA-384, HMAC-SHA-384, ' +
    'AES-256-GCM) and @noble/ciphers (XChaCha20-Poly1305), not by the code under test.',
  cases: CASES.map(buildCase),
};
const text = JSON.stringify(doc, null, 2) + '\n';
if (process.argv[2]) writeFileSync(process.argv[2], text);
else process.stdout.write(text);
