/** Object storage of sealed chunks and manifests: see docs/storage.md, "Object storage". */
export * from "./errors.js"
export * from "./Manifest.js"
export { clearNaming, keyedNaming, parseManifestName, MARKER_NAME, type ManifestKind, type Naming } from "./Naming.js"
export * from "./ObjectStore.js"
export { DEFAULT_RETRY, type RetryPolicy } from "./s3.js"
export * from "./settings.js"
export type { ChunkMeta, ChunkSource } from "./source.js"
export { generateIdentity, recipientOf } from "./age.js"
