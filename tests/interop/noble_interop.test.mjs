// noble_interop.test.mjs: qsapi's ML-KEM, hybrid KEMs (X-Wing, MLKEM1024-P384) and ML-DSA against
// @noble/post-quantum, an independent implementation (pure TypeScript, pinned to 0.7.1 by
// package-lock.json).
//
// Usage: node noble_interop.test.mjs path/to/qsapi_interop_tool
// Environment: QSAPI_INTEROP_ITERATIONS (default 16) iterations per algorithm.
//
// For every algorithm and iteration, with fresh random inputs:
//   ML-KEM-768, ML-KEM-1024
//     keygen    the same 64-byte seed d||z gives the same encapsulation key and the same FIPS 203
//               decapsulation key (our ExportExpanded vs noble's secretKey);
//     noble->us noble encapsulates to our public key; we decapsulate (from the seed, and from
//               noble's expanded secretKey through FromExpandedBytes) to noble's shared secret;
//     us->noble we encapsulate to a key noble generated; noble decapsulates to our shared secret;
//     implicit rejection: a ciphertext with one bit flipped decapsulates, on both sides, to the
//               same secret (FIPS 203 Algorithm 18, K-bar = J(z || c)), which differs from the real one.
//   X-Wing (noble ml_kem768_x25519), MLKEM1024-P384 (noble ml_kem1024_p384); the private key is the
//   32-byte seed on both sides (our tool reports no expanded key: "dk" is null)
//     keygen    the same 32-byte seed gives the same public key (ML-KEM part || X25519 / P-384 point);
//     noble->us noble encapsulates to our public key; we decapsulate (from the seed) to its secret;
//     us->noble we encapsulate to a key noble generated; noble decapsulates to our shared secret;
//     ML-KEM part corrupted: one bit flipped in the ML-KEM ciphertext; both sides decapsulate to
//               the same implicit-rejection secret, which differs from the real one;
//     classical part corrupted: one bit flipped in the X25519 / P-384 ciphertext. X-Wing: both
//               sides decapsulate to the same secret, which differs from the real one (X25519
//               accepts any 32 bytes). MLKEM1024-P384: the point is no longer on the curve, so we
//               fail with AUTHENTICATION_FAILED and noble throws; neither returns the real secret.
//   ML-DSA-65, ML-DSA-87
//     keygen    the same 32-byte seed gives the same public key;
//     signatures noble signs and we sign (hedged) with a non-empty context string; each signature
//               verifies on both sides under that context, and both sides reject it under a context
//               with one byte changed, under the empty context, and with one signature bit flipped;
//               an empty-context signature from each side verifies on the other.
// Any mismatch is reported with the inputs needed to reproduce it and makes the exit status 1.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

import { ml_kem1024_p384, ml_kem768_x25519 } from '@noble/post-quantum/hybrid.js';
import { ml_dsa65, ml_dsa87 } from '@noble/post-quantum/ml-dsa.js';
import { ml_kem768, ml_kem1024 } from '@noble/post-quantum/ml-kem.js';

const KEMS = [
  { name: 'ML-KEM-768', noble: ml_kem768 },
  { name: 'ML-KEM-1024', noble: ml_kem1024 },
];
// classical: bytes of the classical (group element) part at the end of public keys and ciphertexts.
// onCurveOnly: a corrupted classical ciphertext is (almost surely) an invalid element and rejected.
const HYBRIDS = [
  { name: 'X-Wing', noble: ml_kem768_x25519, classical: 32, onCurveOnly: false },
  { name: 'MLKEM1024-P384', noble: ml_kem1024_p384, classical: 97, onCurveOnly: true },
];
const DSAS = [
  { name: 'ML-DSA-65', noble: ml_dsa65 },
  { name: 'ML-DSA-87', noble: ml_dsa87 },
];

const toolPath = process.argv[2];
if (!toolPath) {
  console.error('usage: node noble_interop.test.mjs path/to/qsapi_interop_tool');
  process.exit(2);
}
const NOBLE_VERSION = '0.7.1';
const installed = JSON.parse(
  readFileSync(new URL('./node_modules/@noble/post-quantum/package.json', import.meta.url), 'utf8')).version;
if (installed !== NOBLE_VERSION) {
  console.error(`interop: @noble/post-quantum ${installed} is installed, the test is written for ${NOBLE_VERSION}; ` +
                'run tests/interop/setup.sh');
  process.exit(1);
}
const iterations = Number.parseInt(process.env.QSAPI_INTEROP_ITERATIONS ?? '16', 10);
assert.ok(Number.isInteger(iterations) && iterations > 0, 'QSAPI_INTEROP_ITERATIONS must be a positive integer');

const hex = (bytes) => Buffer.from(bytes).toString('hex');
const unhex = (s) => new Uint8Array(Buffer.from(s, 'hex'));

// flipBit returns a copy of `bytes` with one random bit flipped in bytes [from, to).
function flipBit(bytes, from = 0, to = bytes.length) {
  const out = Uint8Array.from(bytes);
  out[randomInt(from, to)] ^= 1 << randomInt(8);
  return out;
}

// ---- the tool, one long-lived process speaking JSON lines ----------------------------------------

class Tool {
  constructor(path) {
    this.child = spawn(path, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.pending = [];
    this.nextId = 1;
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        for (const p of this.pending.splice(0)) {
          p.reject(new Error(`qsapi_interop_tool exited (code ${code}, signal ${signal}) with a request pending`));
        }
        resolve({ code, signal });
      });
    });
    this.child.on('error', (err) => {
      console.error(`interop: cannot run ${path}: ${err.message}`);
      process.exit(1);
    });
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const p = this.pending.shift();
      if (!p) return;
      let reply;
      try {
        reply = JSON.parse(line);
      } catch {
        p.reject(new Error(`qsapi_interop_tool printed a line that is not JSON: ${line.slice(0, 200)}`));
        return;
      }
      if (reply.id !== p.id) p.reject(new Error(`reply id ${reply.id} for request ${p.id}`));
      else if (reply.status !== 'ok' && !p.raw) p.reject(new Error(`qsapi_interop_tool ${p.op}: ${reply.error}`));
      else p.resolve(reply);
    });
  }

  // call sends one request; byte-string fields are given as Uint8Array and sent as hex. An error
  // reply rejects the promise.
  call(op, fields) {
    return this.#send(op, fields, false);
  }

  // request is call that resolves with an error reply too ({status: 'error', error: 'CODE: ..'}).
  request(op, fields) {
    return this.#send(op, fields, true);
  }

  #send(op, fields, raw) {
    const id = this.nextId++;
    const request = { id, op };
    for (const [k, v] of Object.entries(fields)) request[k] = v instanceof Uint8Array ? hex(v) : v;
    return new Promise((resolve, reject) => {
      this.pending.push({ id, op, raw, resolve, reject });
      this.child.stdin.write(JSON.stringify(request) + '\n');
    });
  }

  async close() {
    this.child.stdin.end();
    return this.exited;
  }
}

// ---- bookkeeping -----------------------------------------------------------------------------------

let passed = 0;
const failures = [];

// check records one comparison. `inputs` is printed on failure so that the case can be replayed.
function check(label, ok, detail, inputs) {
  if (ok) {
    passed++;
    return;
  }
  const lines = [`FAIL ${label}${detail ? `: ${detail}` : ''}`];
  for (const [k, v] of Object.entries(inputs ?? {})) lines.push(`    ${k} = ${v instanceof Uint8Array ? hex(v) : v}`);
  failures.push(lines.join('\n'));
  console.error(lines.join('\n'));
}

function checkEqualBytes(label, ours, theirs, inputs) {
  const a = ours instanceof Uint8Array ? ours : unhex(ours);
  const b = theirs instanceof Uint8Array ? theirs : unhex(theirs);
  let detail = '';
  if (a.length !== b.length) {
    detail = `length ${a.length} (qsapi) != ${b.length} (noble)`;
  } else {
    const i = a.findIndex((x, j) => x !== b[j]);
    if (i >= 0) {
      detail = `first difference at byte ${i} of ${a.length}: ` +
               `qsapi ${hex(a.subarray(i, i + 8))}... noble ${hex(b.subarray(i, i + 8))}...`;
    }
  }
  check(label, detail === '', detail, inputs);
}

// step runs `fn`, turning an exception (a tool error, a noble throw) into a recorded failure.
async function step(label, inputs, fn) {
  try {
    await fn();
  } catch (err) {
    check(label, false, `threw: ${err.message}`, inputs);
  }
}

// ---- ML-KEM ----------------------------------------------------------------------------------------

async function kemIteration(tool, { name, noble }) {
  // keygen from one seed on both sides.
  const seed = randomBytes(64);
  const nk = noble.keygen(seed);
  let ours;
  await step(`${name} keygen`, { seed }, async () => {
    ours = await tool.call('kem_keygen', { alg: name, seed });
    checkEqualBytes(`${name} keygen: public key from the same seed`, ours.pk, nk.publicKey, { seed });
    checkEqualBytes(`${name} keygen: expanded decapsulation key (ExportExpanded vs noble secretKey)`, ours.dk,
                    nk.secretKey, { seed });
  });
  if (!ours) return;

  // noble encapsulates to our public key; we decapsulate.
  const enc = noble.encapsulate(unhex(ours.pk));
  await step(`${name} noble->qsapi`, { seed, ct: enc.cipherText }, async () => {
    const fromSeed = await tool.call('kem_decaps', { alg: name, seed, ct: enc.cipherText });
    checkEqualBytes(`${name} noble encapsulates, qsapi decapsulates (key from seed)`, fromSeed.ss, enc.sharedSecret,
                    { seed, ct: enc.cipherText });
    const fromDk = await tool.call('kem_decaps', { alg: name, dk: nk.secretKey, ct: enc.cipherText });
    checkEqualBytes(`${name} noble encapsulates, qsapi decapsulates (noble's expanded key via FromExpandedBytes)`,
                    fromDk.ss, enc.sharedSecret, { seed, ct: enc.cipherText });
  });

  // Implicit rejection: a corrupted ciphertext gives the same pseudorandom secret on both sides.
  const badCt = flipBit(enc.cipherText);
  await step(`${name} implicit rejection`, { seed, ct: badCt }, async () => {
    const theirs = noble.decapsulate(badCt, nk.secretKey);
    const mine = await tool.call('kem_decaps', { alg: name, seed, ct: badCt });
    checkEqualBytes(`${name} implicit rejection: same secret for a corrupted ciphertext`, mine.ss, theirs,
                    { seed, ct: badCt });
    check(`${name} implicit rejection: the rejection secret differs from the real one`,
          hex(theirs) !== hex(enc.sharedSecret), '', { seed, ct: badCt });
  });

  // We encapsulate to a key that noble generated on its own; noble decapsulates.
  const seed2 = randomBytes(64);
  const nk2 = noble.keygen(seed2);
  await step(`${name} qsapi->noble`, { noble_seed: seed2 }, async () => {
    const mine = await tool.call('kem_encaps', { alg: name, pk: nk2.publicKey });
    const ct = unhex(mine.ct);
    check(`${name} qsapi ciphertext length`, ct.length === noble.lengths.cipherText,
          `${ct.length} != ${noble.lengths.cipherText}`, {});
    const theirs = noble.decapsulate(ct, nk2.secretKey);
    checkEqualBytes(`${name} qsapi encapsulates, noble decapsulates`, mine.ss, theirs, { noble_seed: seed2, ct });
  });
}

// ---- hybrid KEMs (X-Wing, MLKEM1024-P384) -----------------------------------------------------------

async function hybridIteration(tool, { name, noble, classical, onCurveOnly }) {
  const ctLen = noble.lengths.cipherText;
  const pqLen = ctLen - classical;  // the ML-KEM ciphertext comes first, the group element last

  // keygen from one 32-byte seed on both sides; noble's secretKey is that seed.
  const seed = randomBytes(32);
  const nk = noble.keygen(seed);
  let ours;
  await step(`${name} keygen`, { seed }, async () => {
    ours = await tool.call('kem_keygen', { alg: name, seed });
    checkEqualBytes(`${name} keygen: public key from the same seed`, ours.pk, nk.publicKey, { seed });
    checkEqualBytes(`${name} keygen: noble's secret key is the seed`, seed, nk.secretKey, { seed });
    check(`${name} keygen: no expanded key for a hybrid ("dk" is null)`, ours.dk === null,
          `dk = ${JSON.stringify(ours.dk)?.slice(0, 40)}`, { seed });
  });
  if (!ours) return;

  // noble encapsulates to our public key (it throws if it rejects the key); we decapsulate.
  let enc;
  await step(`${name} noble->qsapi`, { seed, pk: ours.pk }, async () => {
    enc = noble.encapsulate(unhex(ours.pk));
    const mine = await tool.call('kem_decaps', { alg: name, seed, ct: enc.cipherText });
    checkEqualBytes(`${name} noble encapsulates, qsapi decapsulates`, mine.ss, enc.sharedSecret,
                    { seed, ct: enc.cipherText });
  });
  if (!enc) return;

  // One bit flipped in the ML-KEM part: ML-KEM implicit rejection, then the same combiner.
  const badPq = flipBit(enc.cipherText, 0, pqLen);
  await step(`${name} ML-KEM part corrupted`, { seed, ct: badPq }, async () => {
    const theirs = noble.decapsulate(badPq, seed);
    const mine = await tool.call('kem_decaps', { alg: name, seed, ct: badPq });
    checkEqualBytes(`${name} ML-KEM part corrupted: same implicit-rejection secret`, mine.ss, theirs,
                    { seed, ct: badPq });
    check(`${name} ML-KEM part corrupted: the secret differs from the real one`,
          mine.ss !== hex(enc.sharedSecret) && hex(theirs) !== hex(enc.sharedSecret), '', { seed, ct: badPq });
  });

  // One bit flipped in the classical part.
  const badT = flipBit(enc.cipherText, pqLen, ctLen);
  const real = hex(enc.sharedSecret);
  await step(`${name} classical part corrupted`, { seed, ct: badT }, async () => {
    let theirs;
    let nobleError;
    try {
      theirs = hex(noble.decapsulate(badT, seed));
    } catch (err) {
      nobleError = err;
    }
    const mine = await tool.request('kem_decaps', { alg: name, seed, ct: badT });
    const describe = (secret, error) => (error === undefined ? `secret ${secret}` : `error ${error}`);
    const outcome = `qsapi ${describe(mine.ss, mine.error)}; noble ${describe(theirs, nobleError?.message)}`;
    if (onCurveOnly) {
      check(`${name} classical part corrupted: qsapi fails with AUTHENTICATION_FAILED`,
            mine.status === 'error' && mine.error.startsWith('AUTHENTICATION_FAILED'), outcome, { seed, ct: badT });
      check(`${name} classical part corrupted: noble throws`, nobleError !== undefined, outcome, { seed, ct: badT });
    } else {
      check(`${name} classical part corrupted: both sides decapsulate`,
            mine.status === 'ok' && nobleError === undefined, outcome, { seed, ct: badT });
      if (mine.status === 'ok' && nobleError === undefined) {
        checkEqualBytes(`${name} classical part corrupted: same secret on both sides`, mine.ss, theirs,
                        { seed, ct: badT });
      }
    }
    check(`${name} classical part corrupted: neither side returns the real secret`,
          mine.ss !== real && theirs !== real, outcome, { seed, ct: badT });
  });

  // We encapsulate to a key that noble generated on its own; noble decapsulates.
  const seed2 = randomBytes(32);
  const nk2 = noble.keygen(seed2);
  await step(`${name} qsapi->noble`, { noble_seed: seed2 }, async () => {
    const mine = await tool.call('kem_encaps', { alg: name, pk: nk2.publicKey });
    const ct = unhex(mine.ct);
    check(`${name} qsapi ciphertext length`, ct.length === ctLen, `${ct.length} != ${ctLen}`, {});
    const theirs = noble.decapsulate(ct, nk2.secretKey);
    checkEqualBytes(`${name} qsapi encapsulates, noble decapsulates`, mine.ss, theirs, { noble_seed: seed2, ct });
  });
}

// ---- ML-DSA ----------------------------------------------------------------------------------------

// sizesFor picks message and context lengths: edge cases first, then random ones.
function sizesFor(iteration) {
  if (iteration === 0) return { msgLen: 0, ctxLen: 255 };
  if (iteration === 1) return { msgLen: 4096, ctxLen: 1 };
  return { msgLen: randomInt(1, 300), ctxLen: randomInt(1, 256) };
}

async function dsaIteration(tool, { name, noble }, iteration) {
  const seed = randomBytes(32);
  const nk = noble.keygen(seed);
  let pk;
  await step(`${name} keygen`, { seed }, async () => {
    pk = unhex((await tool.call('sig_keygen', { alg: name, seed })).pk);
    checkEqualBytes(`${name} keygen: public key from the same seed`, pk, nk.publicKey, { seed });
  });
  if (!pk) return;

  const { msgLen, ctxLen } = sizesFor(iteration);
  const msg = randomBytes(msgLen);
  const ctx = randomBytes(ctxLen);
  const wrongCtx = Uint8Array.from(ctx);
  wrongCtx[randomInt(ctxLen)] ^= 1 << randomInt(8);
  const inputs = { seed, msg, ctx };

  const verifiers = {
    noble: async (sig, context) => noble.verify(sig, msg, nk.publicKey, { context }),
    qsapi: async (sig, context) => (await tool.call('sig_verify', { alg: name, pk, msg, sig, ctx: context })).verified,
  };

  const signatures = {};
  await step(`${name} noble sign`, inputs, async () => {
    signatures.noble = noble.sign(msg, nk.secretKey, { context: ctx });
  });
  await step(`${name} qsapi sign`, inputs, async () => {
    signatures.qsapi = unhex((await tool.call('sig_sign', { alg: name, seed, msg, ctx })).sig);
    check(`${name} qsapi signature length`, signatures.qsapi.length === noble.lengths.signature,
          `${signatures.qsapi.length} != ${noble.lengths.signature}`, inputs);
  });

  for (const [signer, sig] of Object.entries(signatures)) {
    const flipped = flipBit(sig);
    const cases = [
      { what: 'under the signing context', sig, context: ctx, expect: true },
      { what: 'under a context with one byte changed', sig, context: wrongCtx, expect: false },
      { what: 'under the empty context', sig, context: new Uint8Array(0), expect: false },
      { what: 'with one signature bit flipped', sig: flipped, context: ctx, expect: false },
    ];
    for (const c of cases) {
      for (const [verifier, verify] of Object.entries(verifiers)) {
        const label = `${name} ${signer} signs (context), ${verifier} verifies ${c.what}`;
        await step(label, { ...inputs, sig: c.sig }, async () => {
          const got = await verify(c.sig, c.context);
          check(label, got === c.expect, `expected ${c.expect ? 'accept' : 'reject'}, got ${got ? 'accept' : 'reject'}`,
                { ...inputs, sig: c.sig });
        });
      }
    }
  }

  // The empty context (no context argument on either side) interoperates too.
  await step(`${name} empty context`, { seed, msg }, async () => {
    const theirs = noble.sign(msg, nk.secretKey);
    check(`${name} noble signs with no context, qsapi verifies`, await verifiers.qsapi(theirs, new Uint8Array(0)),
          'rejected', { seed, msg, sig: theirs });
    const mine = unhex((await tool.call('sig_sign', { alg: name, seed, msg })).sig);
    check(`${name} qsapi signs with no context, noble verifies`, noble.verify(mine, msg, nk.publicKey), 'rejected',
          { seed, msg, sig: mine });
  });
}

// ---- main ------------------------------------------------------------------------------------------

const tool = new Tool(toolPath);
const started = Date.now();
// Each group lists, for the summary line, what it checks.
const GROUPS = [
  { algorithms: KEMS, run: kemIteration,
    checks: 'ML-KEM: keygen + expanded key, both directions, implicit rejection' },
  { algorithms: HYBRIDS, run: hybridIteration,
    checks: 'hybrid KEMs: keygen, both directions, corrupted ML-KEM part, corrupted classical part' },
  { algorithms: DSAS, run: dsaIteration,
    checks: 'ML-DSA: keygen, sign/verify both ways with context, wrong context, flipped bit, empty context' },
];
const perAlgorithm = [];
for (const group of GROUPS) {
  for (const alg of group.algorithms) {
    const before = passed;
    for (let i = 0; i < iterations; i++) await group.run(tool, alg, i);
    perAlgorithm.push(`${alg.name} ${passed - before}`);
  }
}
const { code, signal } = await tool.close();
check('qsapi_interop_tool exit status', code === 0, `code ${code}, signal ${signal}`, {});

const seconds = ((Date.now() - started) / 1000).toFixed(1);
if (failures.length > 0) {
  console.error(`interop: FAILED: ${failures.length} check(s) failed, ${passed} passed ` +
                `(@noble/post-quantum ${NOBLE_VERSION}, ${iterations} iterations per algorithm, ${seconds}s)`);
  process.exit(1);
}
console.log(`interop: OK: ${passed} checks passed against @noble/post-quantum ${NOBLE_VERSION} ` +
            `(${iterations} iterations per algorithm; ${perAlgorithm.join(', ')}; ${seconds}s)\n` +
            `interop: checked: ${GROUPS.map((g) => g.checks).join('; ')}`);
