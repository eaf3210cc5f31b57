// Package privacy keeps personal data off the event stream in clear and makes
// it erasable without rewriting history.
//
// The event stream is append-only and hash-chained: deleting or editing an
// event would break tamper evidence, yet a worker may ask for erasure (GDPR
// art. 17) and disability or mediator needs are special-category data (art. 9).
// Crypto-shredding reconciles the two. Every worker gets a random 32-byte data
// key; personal fields (tax code, names, birth date, disability, mediator
// language) are sealed with it before they reach an event, and erasing the
// person means destroying the key. The events, their order and their hashes
// stay as they were; the sealed fields become noise, and the statistics built
// from non-personal fields survive.
//
// The worker is named on the stream by a pseudonym rather than by tax code:
// an HMAC of the tax code under a key derived from the master key. A plain hash
// would not do, because tax codes are structured and low-entropy (surname,
// name, birth date, place) and can be enumerated; without the master key the
// pseudonym reveals nothing, yet it is stable, so analytics can count and join
// on it, and it is lowercase hex, so it is a valid NATS subject token and KV key.
//
// Data keys live in a JetStream KV bucket, wrapped (AES-256-GCM) with a
// key-encryption key derived from the master key, so a copy of the bucket
// alone unlocks nothing. Erasure first writes a tombstone, so the key can no
// longer be read or recreated even if the process dies right after, and then
// overwrites the stored key on disk with SecureDeleteMsg. The bucket is
// therefore created by this package, with deletes allowed (a bucket made by
// the generic KV API denies message deletes, and that cannot be undone later)
// and two revisions per key, so that the tombstone never pushes the old key
// out through the per-subject limit, which drops without overwriting.
//
// What secure deletion does not reach, and operations must cover: backups and
// snapshots of the store directory, blocks freed by the filesystem when the
// server rewrites a block file, and on a replicated bucket the Raft log, which
// keeps the original append until it is compacted. Keep those short-lived.
package privacy
