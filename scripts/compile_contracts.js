#!/usr/bin/env node
// Compiles contracts/src/*.sol and contracts/test/*.sol with the pinned npm `solc` (solc-js,
// standard-JSON API) and writes contracts/artifacts/<Name>.json, one file per contract.
//
//   node scripts/compile_contracts.js           write the artifacts
//   node scripts/compile_contracts.js --check   recompile and exit 1 if any committed
//                                               artifact differs from the fresh output
//
// Reproducible: fixed settings below, sources keyed by their path relative to contracts/,
// deterministic JSON output (sorted inputs, 2-space indent, trailing newline). Every artifact
// records the compiler version and `sourcesHash`, a SHA-256 over every input source (path and
// content), so a stale artifact is detectable without a compiler.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const ROOT = path.resolve(__dirname, '..');
const CONTRACTS = path.join(ROOT, 'contracts');
const OUT = path.join(CONTRACTS, 'artifacts');
const SOURCE_DIRS = ['src', 'test'];

// Part of the reproducible build: changing any of these changes every artifact.
const SETTINGS = {
  evmVersion: 'prague',
  optimizer: { enabled: true, runs: 200 },
  metadata: { bytecodeHash: 'none' },
  outputSelection: {
    '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object', 'evm.deployedBytecode.immutableReferences'] },
  },
};

function sha256(s) {
  return crypto.createHash('sha256').update(s).digest('hex');
}

function readSources() {
  const sources = {};
  for (const dir of SOURCE_DIRS) {
    const abs = path.join(CONTRACTS, dir);
    if (!fs.existsSync(abs)) continue;
    for (const f of fs.readdirSync(abs).filter((n) => n.endsWith('.sol')).sort()) {
      sources[`${dir}/${f}`] = { content: fs.readFileSync(path.join(abs, f), 'utf8') };
    }
  }
  return sources;
}

// SHA-256 over "path\0sha256(content)\n" lines in path order; tests/contracts recompute it.
function sourcesHash(sources) {
  const lines = Object.keys(sources)
    .sort()
    .map((p) => `${p}\0${sha256(sources[p].content)}\n`);
  return sha256(lines.join(''));
}

function findImports(p) {
  const abs = path.join(CONTRACTS, p);
  if (abs.startsWith(CONTRACTS + path.sep) && fs.existsSync(abs)) {
    return { contents: fs.readFileSync(abs, 'utf8') };
  }
  return { error: `import not found: ${p}` };
}

function compile() {
  const sources = readSources();
  const input = { language: 'Solidity', sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  for (const e of output.errors || []) process.stderr.write(`${e.formattedMessage || e.message}\n`);
  if (errors.length) throw new Error(`solc: ${errors.length} error(s)`);

  const hash = sourcesHash(sources);
  const artifacts = {};
  for (const sourceName of Object.keys(output.contracts).sort()) {
    for (const name of Object.keys(output.contracts[sourceName]).sort()) {
      const c = output.contracts[sourceName][name];
      // Interfaces (no code) and internal-only libraries (no ABI) are inlined into their users.
      if (!c.evm.bytecode.object || c.abi.length === 0) continue;
      if (artifacts[name]) throw new Error(`duplicate contract name ${name}`);
      artifacts[name] = {
        contractName: name,
        sourceName,
        compiler: { name: 'solc-js', version: solc.version() },
        settings: { evmVersion: SETTINGS.evmVersion, optimizer: SETTINGS.optimizer, metadata: SETTINGS.metadata },
        sourcesHash: hash,
        sources: Object.fromEntries(Object.keys(sources).sort().map((p) => [p, sha256(sources[p].content)])),
        abi: c.abi,
        bytecode: `0x${c.evm.bytecode.object}`,
        deployedBytecode: `0x${c.evm.deployedBytecode.object}`,
        // byte ranges of the runtime code patched with immutables at deployment (for code checks)
        immutableReferences: Object.values(c.evm.deployedBytecode.immutableReferences || {})
          .flat()
          .sort((a, b) => a.start - b.start),
      };
    }
  }
  return artifacts;
}

function render(artifact) {
  return `${JSON.stringify(artifact, null, 2)}\n`;
}

function main() {
  const check = process.argv.includes('--check');
  const artifacts = compile();
  const expected = new Set(Object.keys(artifacts).map((n) => `${n}.json`));
  let bad = 0;
  if (!check) fs.mkdirSync(OUT, { recursive: true });
  for (const [name, a] of Object.entries(artifacts)) {
    const file = path.join(OUT, `${name}.json`);
    const text = render(a);
    if (check) {
      const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
      if (old !== text) {
        process.stderr.write(`stale or missing artifact: contracts/artifacts/${name}.json\n`);
        bad += 1;
      }
    } else {
      fs.writeFileSync(file, text);
    }
  }
  for (const f of fs.existsSync(OUT) ? fs.readdirSync(OUT) : []) {
    if (f.endsWith('.json') && !expected.has(f)) {
      if (check) {
        process.stderr.write(`artifact without a source: contracts/artifacts/${f}\n`);
        bad += 1;
      } else {
        fs.unlinkSync(path.join(OUT, f));
      }
    }
  }
  if (check && bad) process.exit(1);
  process.stdout.write(
    `${check ? 'checked' : 'wrote'} ${Object.keys(artifacts).length} artifacts (solc ${solc.version()}): ` +
      `${Object.keys(artifacts).sort().join(', ')}\n`,
  );
}

main();
