// The CID that `ipfs add -r --cid-version=1 DIR` gives a folder of files, computed by the JS
// reference importer with kubo's defaults for CIDv1: raw leaves, 256 KiB chunks, balanced DAGs of
// at most 174 links, and a HAMT once a directory's links exceed 256 KiB.
// Usage: node directory-cid.mjs DIR   (prints one CID)
import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

const folder = process.argv[2]
const name = path.basename(folder)
const files = (await readdir(folder)).filter((f) => !f.startsWith('.')).sort()
const entries = await Promise.all(
  files.map(async (f) => ({ path: `${name}/${f}`, content: await readFile(path.join(folder, f)) }))
)
const options = {
  cidVersion: 1,
  rawLeaves: true,
  reduceSingleLeafToSelf: true,
  chunker: fixedSize({ chunkSize: 262144 }),
  layout: balanced({ maxChildrenPerNode: 174 }),
  shardSplitThresholdBytes: 262144,
  wrapWithDirectory: false
}
let root = null
for await (const entry of importer(entries, new MemoryBlockstore(), options)) {
  if (entry.path === name) root = entry.cid
}
console.log(root.toString())
