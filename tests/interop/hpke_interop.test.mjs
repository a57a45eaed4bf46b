// hpke_interop.test.mjs: qsapi's HPKE (RFC 9180 with the draft-ietf-hpke-pq KEMs) and its sealed-
// message container against hpke-js (@hpke/core's CipherSuite) with @hpke/ml-kem and
// @hpke/hybridkem-x-wing, independent implementations (versions pinned by package-lock.json).
//
// Usage: node hpke_interop.test.mjs path/to/qsapi_hpke_interop_tool
//
// For every KEM both sides offer (X-Wing, ML-KEM-768, ML-KEM-1024; hpke-js has no MLKEM1024-P384,
// which the draft's Appendix A.6 vector covers instead), every KDF (HKDF-SHA256, HKDF-SHA384),
// every AEAD (AES-256-GCM, ChaCha20-Poly1305, export-only) and both modes (base, PSK):
//   they->us  hpke-js sets up a sender context to our public key and seals three messages (with
//             info and per-message aad) and exports two secrets; we open all three in order and
//             derive the same exports. One flipped ciphertext bit, and the messages out of order,
//             make us fail with AUTHENTICATION_FAILED.
//   us->they  we seal to a key hpke-js generated (its private key serialised as the seed, which we
//             import); hpke-js opens our messages and derives our exports, and rejects a flipped bit.
// Container: for each KEM, we seal a payload in the STREAM format (several chunks, the last short)
//   and in the single format; the harness parses the header as docs/PROTOCOL.md describes and opens
//   every chunk with hpke-js's recipient context (info = the header up to enc_len, aad_i =
//   SHA-256(header) | counter | flag), proving the container is plain RFC 9180. Then hpke-js builds
//   a STREAM container the same way and we open it; a container with its last chunk removed fails.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

import { AeadId, CipherSuite, KdfId } from 'hpke-js';
import { MlKem768, MlKem1024 } from '@hpke/ml-kem';
import { XWing } from '@hpke/hybridkem-x-wing';

const toolPath = process.argv[2];
if (!toolPath) {
  console.error('usage: node hpke_interop.test.mjs path/to/qsapi_hpke_interop_tool');
  process.exit(2);
}
const PINNED = { 'hpke-js': '1.8.0', '@hpke/core': '1.9.0', '@hpke/ml-kem': '0.3.0', '@hpke/hybridkem-x-wing': '0.7.0' };
for (const [name, version] of Object.entries(PINNED)) {
  const installed = JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url), 'utf8')).version;
  if (installed !== version) {
    console.error(`hpke interop: ${name} ${installed} is installed, the test is written for ${version}; run tests/interop/setup.sh`);
    process.exit(1);
  }
}

const KEMS = [
  { name: 'X-Wing', id: 0x647a, make: () => new XWing(), seed: 32 },
  { name: 'ML-KEM-768', id: 0x0041, make: () => new MlKem768(), seed: 64 },
  { name: 'ML-KEM-1024', id: 0x0042, make: () => new MlKem1024(), seed: 64 },
];
const KDFS = [{ name: 'HKDF-SHA256', id: KdfId.HkdfSha256 }, { name: 'HKDF-SHA384', id: KdfId.HkdfSha384 }];
const AEADS = [
  { name: 'AES-256-GCM', id: AeadId.Aes256Gcm },
  { name: 'ChaCha20-Poly1305', id: AeadId.Chacha20Poly1305 },
  { name: 'export-only', id: AeadId.ExportOnly },
];

const hex = (b) => Buffer.from(b instanceof ArrayBuffer ? new Uint8Array(b) : b).toString('hex');
const unhex = (s) => new Uint8Array(Buffer.from(s, 'hex'));
const ab = (u8) => u8.buffer.slice(u8.byteOffset, u8.byteOffset + u8.byteLength);
const flip = (u8, i = u8.length - 1) => { const c = Uint8Array.from(u8); c[i] ^= 0x01; return c; };

// The tool, one request per line.
const tool = spawn(toolPath, [], { stdio: ['pipe', 'pipe', 'inherit'] });
const lines = createInterface({ input: tool.stdout });
const waiting = [];
lines.on('line', (line) => waiting.shift()(JSON.parse(line)));
function call(request) {
  return new Promise((resolve) => { waiting.push(resolve); tool.stdin.write(JSON.stringify(request) + '\n'); });
}
async function ok(request) {
  const r = await call(request);
  assert.equal(r.status, 'ok', `${request.op}: ${r.error}`);
  return r;
}

let checks = 0;
let failures = 0;
async function check(label, fn) {
  try {
    await fn();
    checks++;
  } catch (e) {
    failures++;
    console.error(`FAIL ${label}: ${e.stack ?? e}`);
  }
}

const messages = () => [0, 1, 2].map((i) => ({ pt: randomBytes(17 + 50 * i), aad: Buffer.from(`Count-${i}`) }));
const EXPORTS = [{ ctx: Buffer.from('exporter 0'), L: 32 }, { ctx: Buffer.alloc(0), L: 77 }];

async function pairTest(kem, kdf, aead, mode) {
  const suite = new CipherSuite({ kem: kem.make(), kdf: kdf.id, aead: aead.id });
  const exportOnly = aead.id === AeadId.ExportOnly;
  const info = randomBytes(20);
  const psk = mode === 'psk' ? { key: ab(randomBytes(32)), id: ab(Buffer.from('qkd-key-42')) } : undefined;
  const pskFields = psk ? { psk: hex(psk.key), psk_id: hex(psk.id) } : {};
  const ids = { kem: kem.id, kdf: kdf.id, aead: aead.id };
  const label = `${kem.name}/${kdf.name}/${aead.name}/${mode}`;

  // they -> us
  await check(`${label} hpke-js seals, qsapi opens`, async () => {
    const seed = randomBytes(kem.seed);
    const { pk } = await ok({ op: 'keygen', kem: kem.id, seed: hex(seed) });
    const sender = await suite.createSenderContext({
      recipientPublicKey: await suite.kem.deserializePublicKey(ab(unhex(pk))), info: ab(info), psk });
    const msgs = exportOnly ? [] : messages();
    const cts = [];
    for (const m of msgs) cts.push(new Uint8Array(await sender.seal(ab(m.pt), ab(m.aad))));
    const exports = [];
    for (const e of EXPORTS) exports.push(hex(await sender.export(ab(e.ctx), e.L)));
    const req = { op: 'context_open', ...ids, seed: hex(seed), enc: hex(sender.enc), info: hex(info), ...pskFields,
      messages: msgs.map((m, i) => ({ ct: hex(cts[i]), aad: hex(m.aad) })),
      exports: EXPORTS.map((e) => ({ ctx: hex(e.ctx), L: e.L })) };
    const r = await ok(req);
    assert.deepEqual(r.pts, msgs.map((m) => hex(m.pt)));
    assert.deepEqual(r.exports, exports);
    if (!exportOnly) {
      const bad = await call({ ...req, messages: [{ ct: hex(flip(cts[0], 5)), aad: hex(msgs[0].aad) }] });
      assert.match(bad.error ?? '', /^AUTHENTICATION_FAILED/);
      const reordered = await call({ ...req, messages: [req.messages[1], req.messages[0]] });
      assert.match(reordered.error ?? '', /^AUTHENTICATION_FAILED/);
      const badEnc = await call({ ...req, enc: hex(flip(unhex(hex(sender.enc)), 3)) });
      assert.match(badEnc.error ?? '', /^AUTHENTICATION_FAILED/);
    }
  });

  // us -> they
  await check(`${label} qsapi seals, hpke-js opens`, async () => {
    const kp = await suite.kem.generateKeyPair();
    const seed = new Uint8Array(await suite.kem.serializePrivateKey(kp.privateKey));
    assert.equal(seed.length, kem.seed);
    const pk = new Uint8Array(await suite.kem.serializePublicKey(kp.publicKey));
    const ours = await ok({ op: 'keygen', kem: kem.id, seed: hex(seed) });
    assert.equal(ours.pk, hex(pk), 'the same seed gives the same public key on both sides');
    const msgs = exportOnly ? [] : messages();
    const r = await ok({ op: 'context_seal', ...ids, pk: hex(pk), info: hex(info), ...pskFields,
      messages: msgs.map((m) => ({ pt: hex(m.pt), aad: hex(m.aad) })),
      exports: EXPORTS.map((e) => ({ ctx: hex(e.ctx), L: e.L })) });
    const recipient = await suite.createRecipientContext({
      recipientKey: kp.privateKey, enc: ab(unhex(r.enc)), info: ab(info), psk });
    for (let i = 0; i < msgs.length; i++) {
      const pt = new Uint8Array(await recipient.open(ab(unhex(r.cts[i])), ab(msgs[i].aad)));
      assert.equal(hex(pt), hex(msgs[i].pt));
    }
    for (let i = 0; i < EXPORTS.length; i++) {
      assert.equal(hex(await recipient.export(ab(EXPORTS[i].ctx), EXPORTS[i].L)), r.exports[i]);
    }
    if (!exportOnly) {
      const fresh = await suite.createRecipientContext({
        recipientKey: kp.privateKey, enc: ab(unhex(r.enc)), info: ab(info), psk });
      await assert.rejects(fresh.open(ab(flip(unhex(r.cts[0]))), ab(msgs[0].aad)));
    }
  });
}

// ---- Container (docs/PROTOCOL.md, "Sealed messages" and "STREAM") ----

function parseContainer(bytes) {
  let p = 0;
  const take = (n) => { assert.ok(p + n <= bytes.length, 'truncated container'); const s = bytes.subarray(p, p + n); p += n; return s; };
  const u8 = () => take(1)[0];
  const u16 = () => { const b = take(2); return (b[0] << 8) | b[1]; };
  const u32 = () => { const b = take(4); return ((b[0] << 24) >>> 0) + (b[1] << 16) + (b[2] << 8) + b[3]; };
  assert.equal(Buffer.from(take(4)).toString('latin1'), 'QSHP');
  const h = { version: u8(), format: u8(), kem: u16(), kdf: u16(), aead: u16(), mode: u8() };
  h.keyId = take(u8());
  h.pskId = take(u8());
  h.chunkSize = u32();
  h.infoEnd = p;
  h.enc = take(u16());
  h.headerEnd = p;
  h.header = bytes.subarray(0, p);
  h.info = bytes.subarray(0, h.infoEnd);
  h.digest = createHash('sha256').update(h.header).digest();
  h.body = bytes.subarray(p);
  return h;
}

function chunkAad(digest, counter, flag) {
  const aad = Buffer.alloc(32 + 8 + 1);
  digest.copy(aad, 0);
  aad.writeBigUInt64BE(BigInt(counter), 32);
  aad[40] = flag;
  return aad;
}

function u32be(n) { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; }

async function containerTest(kem) {
  const kdf = KDFS[1];
  const aead = AEADS[0];
  const suite = new CipherSuite({ kem: kem.make(), kdf: kdf.id, aead: aead.id });
  const ids = { kem: kem.id, kdf: kdf.id, aead: aead.id };
  const kp = await suite.kem.generateKeyPair();
  const seed = new Uint8Array(await suite.kem.serializePrivateKey(kp.privateKey));
  const pk = new Uint8Array(await suite.kem.serializePublicKey(kp.publicKey));
  const keyId = randomBytes(16);
  const chunkSize = 64;
  const payload = randomBytes(chunkSize * 3 + 17);

  await check(`${kem.name} container: qsapi seals a STREAM, hpke-js opens it chunk by chunk`, async () => {
    const r = await ok({ op: 'container_seal', ...ids, pk: hex(pk), key_id: hex(keyId), pt: hex(payload), chunk_size: chunkSize });
    const h = parseContainer(unhex(r.container));
    assert.deepEqual([h.version, h.format, h.kem, h.kdf, h.aead, h.mode, h.chunkSize], [1, 2, kem.id, kdf.id, aead.id, 0, chunkSize]);
    assert.equal(hex(h.keyId), hex(keyId));
    const recipient = await suite.createRecipientContext({ recipientKey: kp.privateKey, enc: ab(h.enc), info: ab(h.info) });
    let p = 0;
    const out = [];
    for (let counter = 0; ; counter++) {
      const flag = h.body[p];
      const len = h.body.readUInt32BE ? h.body.readUInt32BE(p + 1) : Buffer.from(h.body).readUInt32BE(p + 1);
      const ct = h.body.subarray(p + 5, p + 5 + len);
      p += 5 + len;
      out.push(new Uint8Array(await recipient.open(ab(ct), ab(chunkAad(h.digest, counter, flag)))));
      if (flag === 1) break;
    }
    assert.equal(p, h.body.length, 'nothing follows the last chunk');
    assert.equal(Buffer.concat(out).toString('hex'), payload.toString('hex'));
  });

  await check(`${kem.name} container: qsapi seals a single message, hpke-js opens it`, async () => {
    const small = randomBytes(100);
    const r = await ok({ op: 'container_seal', ...ids, pk: hex(pk), key_id: hex(keyId), pt: hex(small) });
    const h = parseContainer(unhex(r.container));
    assert.equal(h.format, 1);
    assert.equal(h.chunkSize, 0);
    const len = Buffer.from(h.body).readUInt32BE(0);
    assert.equal(h.body.length, 4 + len);
    const recipient = await suite.createRecipientContext({ recipientKey: kp.privateKey, enc: ab(h.enc), info: ab(h.info) });
    const pt = new Uint8Array(await recipient.open(ab(h.body.subarray(4)), ab(h.digest)));
    assert.equal(hex(pt), hex(small));
  });

  await check(`${kem.name} container: hpke-js builds a STREAM, qsapi opens it; without its last chunk it fails`, async () => {
    const info = Buffer.concat([Buffer.from('QSHP'), Buffer.from([1, 2]), Buffer.from([kem.id >> 8, kem.id & 0xff, 0, kdf.id, 0, aead.id, 0]),
      Buffer.from([keyId.length]), keyId, Buffer.from([0]), u32be(chunkSize)]);
    const sender = await suite.createSenderContext({ recipientPublicKey: kp.publicKey, info: ab(info) });
    const enc = Buffer.from(sender.enc);
    const header = Buffer.concat([info, Buffer.from([enc.length >> 8, enc.length & 0xff]), enc]);
    const digest = createHash('sha256').update(header).digest();
    const parts = [header];
    const chunks = [];
    for (let off = 0; off < payload.length; off += chunkSize) chunks.push(payload.subarray(off, off + chunkSize));
    for (let i = 0; i < chunks.length; i++) {
      const flag = i === chunks.length - 1 ? 1 : 0;
      const ct = Buffer.from(await sender.seal(ab(chunks[i]), ab(chunkAad(digest, i, flag))));
      parts.push(Buffer.from([flag]), u32be(ct.length), ct);
    }
    const container = Buffer.concat(parts);
    const r = await ok({ op: 'container_open', kem: kem.id, seed: hex(seed), key_id: hex(keyId), container: hex(container) });
    assert.equal(r.pt, payload.toString('hex'));
    const lastLen = 5 + chunks[chunks.length - 1].length + 16;
    const truncated = await call({ op: 'container_open', kem: kem.id, seed: hex(seed), key_id: hex(keyId),
      container: hex(container.subarray(0, container.length - lastLen)) });
    assert.match(truncated.error ?? '', /^AUTHENTICATION_FAILED/);
  });
}

for (const kem of KEMS) {
  for (const kdf of KDFS) {
    for (const aead of AEADS) {
      for (const mode of ['base', 'psk']) await pairTest(kem, kdf, aead, mode);
    }
  }
  await containerTest(kem);
}
tool.stdin.end();
console.log(`hpke interop: ${checks} checks passed, ${failures} failed ` +
            `(KEMs ${KEMS.map((k) => k.name).join(', ')}; MLKEM1024-P384 is not in hpke-js: covered by draft-ietf-hpke-pq-05 A.6)`);
// 72 pairwise checks (3 KEMs x 2 KDFs x 3 AEADs x 2 modes x 2 directions) + 9 container checks.
const expected = KEMS.length * KDFS.length * AEADS.length * 2 * 2 + KEMS.length * 3;
if (failures === 0 && checks !== expected) console.error(`hpke interop: ran ${checks} checks, expected ${expected}`);
process.exit(failures === 0 && checks === expected ? 0 : 1);
