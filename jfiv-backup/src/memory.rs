//! [`MemoryTarget`]: a target in memory, for tests, doctests and dry runs.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::{BackupTarget, Capabilities, ChunkId, Error, Object, Result, SnapshotId, Stored};

#[derive(Debug, Default)]
struct Inner {
    chunks: HashMap<ChunkId, Vec<u8>>,
    order: Vec<ChunkId>,
    manifests: HashMap<SnapshotId, Vec<u8>>,
}

/// Keeps chunks and manifests in hash maps. "Durable" means visible to every later call.
///
/// [`MemoryTarget::sequential`] makes one that behaves like a tape session (no reading chunks
/// back, no sharing of chunks): what a sequential-media test needs.
#[derive(Debug)]
pub struct MemoryTarget {
    inner: Mutex<Inner>,
    caps: Capabilities,
}

impl Default for MemoryTarget {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryTarget {
    /// An empty random-access target.
    pub fn new() -> Self {
        Self {
            inner: Mutex::default(),
            caps: Capabilities {
                random_access: true,
                shared_chunks: true,
            },
        }
    }

    /// An empty target with sequential-media capabilities.
    pub fn sequential() -> Self {
        Self {
            inner: Mutex::default(),
            caps: Capabilities {
                random_access: false,
                shared_chunks: false,
            },
        }
    }

    /// The chunks in the order they were first stored, with their blobs (what a tape session
    /// would hold, in order).
    pub fn chunks_in_order(&self) -> Vec<(ChunkId, Vec<u8>)> {
        let inner = self.lock();
        inner
            .order
            .iter()
            .filter_map(|id| inner.chunks.get(id).map(|b| (*id, b.clone())))
            .collect()
    }

    /// Replaces a stored chunk's blob (to simulate damage in tests).
    pub fn tamper_chunk(&self, id: &ChunkId, blob: Vec<u8>) {
        self.lock().chunks.insert(*id, blob);
    }

    /// Removes a stored chunk (to simulate loss in tests).
    pub fn remove_chunk(&self, id: &ChunkId) {
        self.lock().chunks.remove(id);
    }

    /// Number of stored chunks.
    pub fn chunk_count(&self) -> usize {
        self.lock().chunks.len()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl BackupTarget for MemoryTarget {
    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    async fn put_chunk(&self, id: &ChunkId, blob: Vec<u8>) -> Result<Stored> {
        let mut inner = self.lock();
        if inner.chunks.contains_key(id) {
            return Ok(Stored::AlreadyPresent);
        }
        inner.chunks.insert(*id, blob);
        inner.order.push(*id);
        Ok(Stored::New)
    }

    async fn has_chunk(&self, id: &ChunkId) -> Result<bool> {
        Ok(self.lock().chunks.contains_key(id))
    }

    async fn get_chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
        if !self.caps.random_access {
            return Err(Error::Unsupported {
                operation: "reading a chunk back from a sequential target",
            });
        }
        self.lock().chunks.get(id).cloned().ok_or(Error::NotFound {
            object: Object::Chunk(*id),
        })
    }

    async fn flush(&self) -> Result<()> {
        Ok(())
    }

    async fn put_manifest(&self, id: &SnapshotId, blob: Vec<u8>) -> Result<()> {
        let mut inner = self.lock();
        if inner.manifests.contains_key(id) {
            return Err(Error::Target {
                reason: format!("snapshot {id} already exists"),
            });
        }
        inner.manifests.insert(*id, blob);
        Ok(())
    }

    async fn list_manifests(&self) -> Result<Vec<SnapshotId>> {
        Ok(self.lock().manifests.keys().copied().collect())
    }

    async fn get_manifest(&self, id: &SnapshotId) -> Result<Vec<u8>> {
        self.lock()
            .manifests
            .get(id)
            .cloned()
            .ok_or(Error::NotFound {
                object: Object::Manifest(*id),
            })
    }
}
