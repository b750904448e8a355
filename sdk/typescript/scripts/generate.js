#!/usr/bin/env node
// Generate the TypeScript code of the gRPC API from protos/ into src/generated/.
//
//   node scripts/generate.js           regenerate src/generated/
//   node scripts/generate.js --check   exit 1 when the committed files are stale (CI)
//
// protoc is grpcio-tools' (`python -m grpc_tools.protoc` from the repository's
// virtualenv, the same protoc scripts/gen_protos.py runs for Python), with
// ts-proto as its plug-in. The output depends only on the .proto files and the
// two pinned versions (grpcio-tools in pyproject.toml, ts-proto in
// package-lock.json), so the same input gives byte-identical files.
"use strict";

const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const PACKAGE_ROOT = path.resolve(__dirname, "..");
const REPOSITORY_ROOT = path.resolve(PACKAGE_ROOT, "..", "..");
const PROTO_ROOT = path.join(REPOSITORY_ROOT, "protos");
const OUTPUT = path.join(PACKAGE_ROOT, "src", "generated");

// Why each option: grpc-js clients and service definitions (a component is a
// grpc-js server); 64-bit integers as bigint, so Decimal units and nanosecond
// timestamps are never rounded through a JS number; oneofs as
// `{ $case, value }` unions that TypeScript narrows on `$case`.
const TS_PROTO_OPTIONS = [
  "outputServices=grpc-js",
  "forceLong=bigint",
  "oneof=unions-value",
  "esModuleInterop=true",
  "env=node",
  "useExactTypes=false",
];

function python() {
  if (process.env.TRADEKERNEL_PYTHON) return process.env.TRADEKERNEL_PYTHON;
  const venv = path.join(REPOSITORY_ROOT, ".venv", "bin", "python");
  return fs.existsSync(venv) ? venv : "python3";
}

function protoFiles(folder = PROTO_ROOT) {
  const found = [];
  for (const entry of fs.readdirSync(folder, { withFileTypes: true })) {
    const full = path.join(folder, entry.name);
    if (entry.isDirectory()) found.push(...protoFiles(full));
    else if (entry.name.endsWith(".proto")) found.push(path.relative(PROTO_ROOT, full));
  }
  return found.sort();
}

function generate(destination) {
  const plugin = path.join(PACKAGE_ROOT, "node_modules", ".bin", "protoc-gen-ts_proto");
  if (!fs.existsSync(plugin)) {
    throw new Error(`${plugin} not found: run \`npm ci\` in sdk/typescript first`);
  }
  fs.mkdirSync(destination, { recursive: true });
  const result = spawnSync(
    python(),
    [
      "-m",
      "grpc_tools.protoc",
      `--proto_path=${PROTO_ROOT}`,
      `--plugin=protoc-gen-ts_proto=${plugin}`,
      `--ts_proto_out=${destination}`,
      `--ts_proto_opt=${TS_PROTO_OPTIONS.join(",")}`,
      ...protoFiles(),
    ],
    { cwd: PROTO_ROOT, encoding: "utf8" },
  );
  if (result.error) throw new Error(`could not run ${python()}: ${result.error.message}`);
  if (result.status !== 0) {
    throw new Error(`protoc failed (${result.status}):\n${result.stderr}`);
  }
}

function filesUnder(folder) {
  if (!fs.existsSync(folder)) return [];
  return fs
    .readdirSync(folder, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(folder, path.join(entry.parentPath ?? entry.path, entry.name)))
    .sort();
}

function staleFiles(expected, committed) {
  const want = new Set(filesUnder(expected));
  const have = new Set(filesUnder(committed));
  const problems = [];
  for (const file of want) {
    if (!have.has(file)) problems.push(`missing:  ${file}`);
    else if (!fs.readFileSync(path.join(expected, file)).equals(fs.readFileSync(path.join(committed, file)))) {
      problems.push(`differs:  ${file}`);
    }
  }
  for (const file of have) {
    if (!want.has(file)) problems.push(`stale:    ${file} (no .proto generates it any more)`);
  }
  return problems;
}

function withTemporaryFolder(work) {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), "tradekernel-ts-gen-"));
  try {
    return work(folder);
  } finally {
    fs.rmSync(folder, { recursive: true, force: true });
  }
}

function check() {
  const relativeOutput = path.relative(REPOSITORY_ROOT, OUTPUT);
  const problems = withTemporaryFolder((folder) => {
    generate(folder);
    return staleFiles(folder, OUTPUT);
  });
  if (problems.length === 0) {
    console.log(`${relativeOutput} is up to date (${protoFiles().length} .proto files).`);
    return 0;
  }
  console.log(`${relativeOutput} is out of date with protos/ (${problems.length} files):`);
  for (const problem of problems) console.log(`  ${problem}`);
  console.log(
    "Run `npm run generate` in sdk/typescript and commit the result. If only the version " +
      "header differs, install the pinned grpcio-tools and run `npm ci`.",
  );
  return 1;
}

function write() {
  withTemporaryFolder((folder) => {
    generate(folder);
    fs.rmSync(OUTPUT, { recursive: true, force: true });
    fs.cpSync(folder, OUTPUT, { recursive: true });
  });
  console.log(`Wrote ${filesUnder(OUTPUT).length} files to ${path.relative(REPOSITORY_ROOT, OUTPUT)}.`);
  return 0;
}

try {
  process.exitCode = process.argv.includes("--check") ? check() : write();
} catch (error) {
  console.error(`generate: ${error.message}`);
  process.exitCode = 2;
}
