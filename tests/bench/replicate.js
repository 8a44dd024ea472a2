// The peer's side of the backlog benchmark (deploy/bench.sh): the same mutations LabEdge's relay
// drains, as documents (_id = mutation id) in a local PouchDB on disk (LevelDB), replicated once to
// pouchdb-server. Prints one JSON line: how long loading and replicating took, and what arrived.
//
//   node replicate.js <mutations.ndjson> <local dir> <server url> <database> <batch size>
'use strict';

const fs = require('fs');
const path = require('path');
const PouchDB = require('pouchdb');

async function main() {
  const [file, dir, server, name, batch] = process.argv.slice(2);
  const batchSize = Number(batch || 500);
  const docs = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const mutation = JSON.parse(line);
      return Object.assign({ _id: mutation.mutation_id }, mutation);
    });

  const local = new PouchDB(path.join(dir, name));
  const loadStart = process.hrtime.bigint();
  for (let i = 0; i < docs.length; i += 1000) {
    await local.bulkDocs(docs.slice(i, i + 1000));
  }
  const loadSeconds = Number(process.hrtime.bigint() - loadStart) / 1e9;

  const remote = new PouchDB(`${server}/${name}`);
  await remote.info(); // creates the database, outside the timing
  const start = process.hrtime.bigint();
  const result = await PouchDB.replicate(local, remote, { batch_size: batchSize });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const info = await remote.info();
  process.stdout.write(
    JSON.stringify({
      docs: docs.length,
      load_s: loadSeconds,
      replicate_s: seconds,
      docs_written: result.docs_written,
      doc_write_failures: result.doc_write_failures,
      remote_doc_count: info.doc_count,
      batch_size: batchSize,
    }) + '\n',
  );
  await local.close();
  await remote.close();
}

main().catch((error) => {
  process.stderr.write(`replicate.js: ${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
