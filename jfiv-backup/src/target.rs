//! The [`BackupTarget`] trait: where encrypted chunks and manifests are stored.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::{ChunkId, Result, SnapshotId};

/// What kind of medium a target writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Capabilities {
    /// `true` for disks, object stores and memory: any chunk can be read back at any time.
    /// `false` for sequential media (tape): chunks are appended in write order, and reading
    /// back means reading a session in order (see [`Extractor`](crate::Extractor)).
    pub random_access: bool,
    /// `true` if chunks already stored by earlier snapshots can be referenced by a new one
    /// (deduplication across snapshots). A tape session is self-sufficient, so a tape target says
    /// `false` and [`has_chunk`](BackupTarget::has_chunk) only knows the current session.
    pub shared_chunks: bool,
}

/// Whether [`BackupTarget::put_chunk`] stored new bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The chunk was written.
    New,
    /// The chunk was already there; nothing was written.
    AlreadyPresent,
}

/// A place where snapshots are stored: a disk, memory, a tape session.
///
/// The target only ever sees encrypted blobs (see `FORMAT.md`) and their names; it never needs
/// the key.
///
/// # Contract
/// - **Idempotency.** `put_chunk(id, blob)` for an id already stored succeeds without changing
///   anything and returns [`Stored::AlreadyPresent`]. Blobs for one id are interchangeable (same
///   plaintext; the nonce differs), so keeping the first is correct.
/// - **Durability.** A chunk is durable once [`flush`](BackupTarget::flush) has returned `Ok`
///   after its `put_chunk`. [`put_manifest`](BackupTarget::put_manifest) first makes every chunk
///   stored so far durable, then stores the manifest durably and atomically: after a crash at any
///   point, a manifest is either absent or complete, and every chunk it references is present
///   and complete. Nothing a target stores before a crash is ever visible half-written.
/// - **Presence.** `has_chunk(id) == true` means a manifest written later on this target may
///   reference the chunk and it will be readable with that manifest. Chunks of an unfinished
///   backup may be reported present once `put_chunk` returned.
/// - **Sequential media** (`random_access == false`): chunks are stored in the order of the
///   `put_chunk` calls, and a manifest is written after all of its chunks, so a tape target can
///   implement the trait by appending to its current session. `get_chunk` may return
///   [`Error::Unsupported`](crate::Error::Unsupported); `list_manifests` and `get_manifest`
///   cover what the target can read without repositioning (a session catalog, say).
/// - **Errors.** A full device is [`Error::NoSpace`](crate::Error::NoSpace), a read-only one
///   [`Error::ReadOnly`](crate::Error::ReadOnly), a missing object
///   [`Error::NotFound`](crate::Error::NotFound). After an error the snapshot being written is not
///   recorded and earlier snapshots are untouched.
/// - Implementations are `Send + Sync` and used as `Arc<dyn BackupTarget>` by concurrent tasks.
#[async_trait]
pub trait BackupTarget: Debug + Send + Sync {
    /// What kind of medium this is.
    fn capabilities(&self) -> Capabilities;

    /// Stores an encrypted chunk under its id (idempotent).
    ///
    /// # Errors
    /// I/O errors, [`Error::NoSpace`](crate::Error::NoSpace), [`Error::ReadOnly`](crate::Error::ReadOnly).
    async fn put_chunk(&self, id: &ChunkId, blob: Vec<u8>) -> Result<Stored>;

    /// Whether the chunk is stored (see the contract for what "stored" means).
    ///
    /// # Errors
    /// I/O errors.
    async fn has_chunk(&self, id: &ChunkId) -> Result<bool>;

    /// Reads a stored chunk's blob (not decrypted: see [`decode_chunk`](crate::format::decode_chunk)).
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), [`Error::Unsupported`](crate::Error::Unsupported)
    /// on sequential media, I/O errors.
    async fn get_chunk(&self, id: &ChunkId) -> Result<Vec<u8>>;

    /// Makes every chunk stored so far durable.
    ///
    /// # Errors
    /// I/O errors, [`Error::NoSpace`](crate::Error::NoSpace).
    async fn flush(&self) -> Result<()>;

    /// Stores a snapshot's encrypted manifest, after making all chunks durable (atomic: it is
    /// there complete or not at all). Storing an id twice is an error.
    ///
    /// # Errors
    /// I/O errors, [`Error::NoSpace`](crate::Error::NoSpace), [`Error::Target`](crate::Error::Target)
    /// if the id exists.
    async fn put_manifest(&self, id: &SnapshotId, blob: Vec<u8>) -> Result<()>;

    /// The ids of the stored manifests, in no particular order.
    ///
    /// # Errors
    /// I/O errors.
    async fn list_manifests(&self) -> Result<Vec<SnapshotId>>;

    /// Reads a manifest's blob (not decrypted: see [`Manifest::decode`](crate::Manifest::decode)).
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), I/O errors.
    async fn get_manifest(&self, id: &SnapshotId) -> Result<Vec<u8>>;
}

#[async_trait]
impl<T: BackupTarget + ?Sized> BackupTarget for std::sync::Arc<T> {
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    async fn put_chunk(&self, id: &ChunkId, blob: Vec<u8>) -> Result<Stored> {
        (**self).put_chunk(id, blob).await
    }
    async fn has_chunk(&self, id: &ChunkId) -> Result<bool> {
        (**self).has_chunk(id).await
    }
    async fn get_chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
        (**self).get_chunk(id).await
    }
    async fn flush(&self) -> Result<()> {
        (**self).flush().await
    }
    async fn put_manifest(&self, id: &SnapshotId, blob: Vec<u8>) -> Result<()> {
        (**self).put_manifest(id, blob).await
    }
    async fn list_manifests(&self) -> Result<Vec<SnapshotId>> {
        (**self).list_manifests().await
    }
    async fn get_manifest(&self, id: &SnapshotId) -> Result<Vec<u8>> {
        (**self).get_manifest(id).await
    }
}
