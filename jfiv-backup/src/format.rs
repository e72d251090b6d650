//! The byte layout of encrypted chunks and manifests (see `FORMAT.md`).
//!
//! Both objects are a 40-byte clear header followed by an XChaCha20-Poly1305 ciphertext:
//!
//! ```text
//! offset size field
//!      0    4 magic: "JFVC" (chunk) or "JFVM" (manifest)
//!      4    1 format version: 1
//!      5    3 reserved, zero
//!      8    8 key fingerprint
//!     16   24 nonce (random)
//!     40    n ciphertext + 16-byte Poly1305 tag
//! ```
//!
//! The associated data is the 40-byte header followed by the object's id (the 32-byte chunk id
//! or the 16-byte snapshot id), so a blob cannot be moved under another name.

use chacha20poly1305::XNonce;
use chacha20poly1305::aead::AeadInPlace;

use crate::{ChunkId, Error, Object, RepositoryKey, Result, SnapshotId};

/// Magic number of an encrypted chunk.
pub const CHUNK_MAGIC: [u8; 4] = *b"JFVC";
/// Magic number of an encrypted manifest.
pub const MANIFEST_MAGIC: [u8; 4] = *b"JFVM";
/// The format version written by this crate.
pub const FORMAT_VERSION: u8 = 1;
/// Size of the clear header of chunks and manifests.
pub const HEADER_LEN: usize = 40;
/// Size of the Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// The largest chunk plaintext accepted when decoding (a bound against decompression bombs).
pub const MAX_CHUNK_LEN: usize = 64 << 20;
/// The largest manifest plaintext accepted when decoding.
pub const MAX_MANIFEST_LEN: usize = 4 << 30;

/// How a chunk payload is compressed (first byte of the encrypted payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Compression {
    /// Stored as is (used when zstd would not make it smaller).
    None = 0,
    /// One zstd frame.
    Zstd = 1,
}

fn header(magic: [u8; 4], key: &RepositoryKey, nonce: &[u8; 24]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&magic);
    h[4] = FORMAT_VERSION;
    h[8..16].copy_from_slice(&key.fingerprint().0);
    h[16..40].copy_from_slice(nonce);
    h
}

/// A new object's buffer: its clear header (with a fresh random nonce), room for `payload`
/// more bytes and the tag. The payload is appended, then [`seal_in_place`] encrypts it.
fn start_object(magic: [u8; 4], key: &RepositoryKey, payload: usize) -> Vec<u8> {
    let nonce: [u8; 24] = rand::random();
    let mut out = Vec::with_capacity(HEADER_LEN + payload + TAG_LEN);
    out.extend_from_slice(&header(magic, key, &nonce));
    out
}

/// The associated data of an object: its header, then its id.
fn associated_data(header: &[u8], id: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(HEADER_LEN + id.len());
    aad.extend_from_slice(&header[..HEADER_LEN]);
    aad.extend_from_slice(id);
    aad
}

/// Encrypts in place what follows the header in `out` (made by [`start_object`]) and appends
/// the tag.
fn seal_in_place(
    cipher: &chacha20poly1305::XChaCha20Poly1305,
    id: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    let aad = associated_data(out, id);
    let nonce = *XNonce::from_slice(&out[16..40]);
    let tag = cipher
        .encrypt_in_place_detached(&nonce, &aad, &mut out[HEADER_LEN..])
        .map_err(|_| Error::Internal {
            reason: "encryption failed".into(),
        })?;
    out.extend_from_slice(&tag);
    Ok(())
}

/// Checks the header, authenticates and decrypts `blob` in place; returns the range of the
/// plaintext payload in it.
fn open_in_place(
    magic: [u8; 4],
    cipher: &chacha20poly1305::XChaCha20Poly1305,
    key: &RepositoryKey,
    id: &[u8],
    blob: &mut [u8],
    object: &Object,
) -> Result<std::ops::Range<usize>> {
    check_header(magic, key, blob, object)?;
    let aad = associated_data(blob, id);
    let nonce = *XNonce::from_slice(&blob[16..40]);
    let tag_at = blob.len() - TAG_LEN;
    let tag = chacha20poly1305::Tag::clone_from_slice(&blob[tag_at..]);
    cipher
        .decrypt_in_place_detached(&nonce, &aad, &mut blob[HEADER_LEN..tag_at], &tag)
        .map_err(|_| {
            Error::integrity(
                object.clone(),
                "authentication failed: the data was damaged or altered",
            )
        })?;
    Ok(HEADER_LEN..tag_at)
}

/// Checks magic, version and key fingerprint of a blob's header without decrypting it.
///
/// # Errors
/// [`Error::Format`] (short blob, bad magic, unknown version), [`Error::WrongKey`].
pub fn check_header(
    magic: [u8; 4],
    key: &RepositoryKey,
    blob: &[u8],
    object: &Object,
) -> Result<()> {
    if blob.len() < HEADER_LEN + TAG_LEN {
        return Err(Error::format(
            object.clone(),
            blob.len() as u64,
            format!(
                "truncated: {} bytes, at least {} expected",
                blob.len(),
                HEADER_LEN + TAG_LEN
            ),
        ));
    }
    if blob[..4] != magic {
        return Err(Error::format(object.clone(), 0, "bad magic number"));
    }
    if blob[4] != FORMAT_VERSION {
        return Err(Error::format(
            object.clone(),
            4,
            format!("unsupported format version {}", blob[4]),
        ));
    }
    if blob[8..16] != key.fingerprint().0 {
        return Err(Error::WrongKey {
            object: object.clone(),
            expected: key.fingerprint().to_string(),
            found: hex::encode(&blob[8..16]),
        });
    }
    Ok(())
}

/// Compresses (zstd at `level`, or stored when that does not help) and encrypts a chunk whose
/// id is `id` (computed by the caller with [`RepositoryKey::chunk_id`]).
///
/// The blob is built in one buffer: header, payload compressed straight into it, encrypted in
/// place, tag appended (no intermediate copies of the chunk).
///
/// # Errors
/// [`Error::Internal`] if compression or encryption fails (it does not, short of a bug).
pub fn encode_chunk(
    key: &RepositoryKey,
    id: &ChunkId,
    plain: &[u8],
    level: i32,
) -> Result<Vec<u8>> {
    encode_chunk_with(
        key,
        id,
        plain,
        Zstd {
            level,
            hash_log: None,
        },
    )
}

/// zstd settings for chunks (they change the bytes stored, never the format: any zstd
/// decoder reads the frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zstd {
    /// The compression level.
    pub level: i32,
    /// log2 of the match-finder's hash table entries; `None` keeps zstd's choice for the level.
    pub hash_log: Option<u32>,
}

/// [`encode_chunk`] with explicit zstd settings.
///
/// # Errors
/// As [`encode_chunk`].
pub fn encode_chunk_with(
    key: &RepositoryKey,
    id: &ChunkId,
    plain: &[u8],
    level: Zstd,
) -> Result<Vec<u8>> {
    let len = u32::try_from(plain.len()).map_err(|_| Error::Internal {
        reason: "chunk larger than 4 GiB".into(),
    })?;
    let bound = zstd::zstd_safe::compress_bound(plain.len());
    let mut out = start_object(CHUNK_MAGIC, key, 5 + bound.max(plain.len()));
    out.push(Compression::Zstd as u8);
    out.extend_from_slice(&len.to_le_bytes());
    let compressed = compress_append(plain, &mut out, level);
    if compressed.is_err() || out.len() >= HEADER_LEN + 5 + plain.len() {
        out.truncate(HEADER_LEN);
        out.push(Compression::None as u8);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(plain);
    }
    seal_in_place(&key.chunk_cipher(), &id.0, &mut out)?;
    Ok(out)
}

thread_local! {
    /// One zstd compression context per worker thread (creating one per chunk is costly).
    static COMPRESSOR: std::cell::RefCell<Option<(Zstd, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Compresses `plain` into one zstd frame appended to `out` (into its spare capacity, which
/// must hold `compress_bound(plain.len())` bytes).
fn compress_append(plain: &[u8], out: &mut Vec<u8>, level: Zstd) -> std::io::Result<()> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            let mut c = zstd::bulk::Compressor::new(level.level)?;
            if let Some(h) = level.hash_log {
                c.set_parameter(zstd::zstd_safe::CParameter::HashLog(h))?;
            }
            *slot = Some((level, c));
        }
        let Some((_, compressor)) = slot.as_mut() else {
            return Err(std::io::Error::other("no compressor"));
        };
        let start = out.len() as u64;
        let mut cursor = std::io::Cursor::new(out);
        cursor.set_position(start);
        compressor.compress_to_buffer(plain, &mut cursor)?;
        Ok(())
    })
}

/// Decompresses one zstd frame of exactly `len` bytes of output at most.
fn decompress(data: &[u8], len: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        let Some(decompressor) = slot.as_mut() else {
            return Err(std::io::Error::other("no decompressor"));
        };
        decompressor.decompress(data, len)
    })
}

/// Decrypts, authenticates, decompresses a chunk, and checks that its keyed hash is `id`.
///
/// # Errors
/// [`Error::WrongKey`], [`Error::Format`], [`Error::Integrity`] naming the chunk.
pub fn decode_chunk(key: &RepositoryKey, id: &ChunkId, blob: &[u8]) -> Result<Vec<u8>> {
    decode_chunk_owned(key, id, blob.to_vec())
}

/// [`decode_chunk`] of a blob the caller owns: it is decrypted in place (no second buffer),
/// and a chunk stored uncompressed is returned in the same allocation.
///
/// # Errors
/// As [`decode_chunk`].
pub fn decode_chunk_owned(key: &RepositoryKey, id: &ChunkId, mut blob: Vec<u8>) -> Result<Vec<u8>> {
    let object = Object::Chunk(*id);
    let range = open_in_place(
        CHUNK_MAGIC,
        &key.chunk_cipher(),
        key,
        &id.0,
        &mut blob,
        &object,
    )?;
    let tag_at = range.end;
    let payload = &blob[range];
    if payload.len() < 5 {
        return Err(Error::integrity(object, "payload too short"));
    }
    let len = u32::from_le_bytes([payload[1], payload[2], payload[3], payload[4]]) as usize;
    if len > MAX_CHUNK_LEN {
        return Err(Error::integrity(
            object,
            format!("declared length {len} too large"),
        ));
    }
    let plain = match payload[0] {
        0 => {
            blob.truncate(tag_at);
            blob.drain(..HEADER_LEN + 5);
            blob
        }
        1 => decompress(&payload[5..], len)
            .map_err(|e| Error::integrity(object.clone(), format!("zstd: {e}")))?,
        other => {
            return Err(Error::format(
                object,
                HEADER_LEN as u64,
                format!("unknown compression {other}"),
            ));
        }
    };
    if plain.len() != len {
        return Err(Error::integrity(
            object,
            "decoded length differs from the declared length",
        ));
    }
    if key.chunk_id(&plain) != *id {
        return Err(Error::integrity(
            object,
            "content does not match the chunk id",
        ));
    }
    Ok(plain)
}

/// Encrypts a serialised manifest (zstd-compressed JSON) under the snapshot id.
///
/// # Errors
/// [`Error::Internal`] on a compression failure.
pub fn encode_manifest(key: &RepositoryKey, id: &SnapshotId, json: &[u8]) -> Result<Vec<u8>> {
    let compressed = zstd::bulk::compress(json, 3).map_err(|e| Error::Internal {
        reason: format!("zstd: {e}"),
    })?;
    let mut out = start_object(MANIFEST_MAGIC, key, compressed.len() + 8);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&compressed);
    seal_in_place(&key.manifest_cipher(), &id.0, &mut out)?;
    Ok(out)
}

/// Decrypts and authenticates a manifest blob, returning its JSON.
///
/// # Errors
/// [`Error::WrongKey`], [`Error::Format`], [`Error::Integrity`] naming the snapshot.
pub fn decode_manifest(key: &RepositoryKey, id: &SnapshotId, blob: &[u8]) -> Result<Vec<u8>> {
    let object = Object::Manifest(*id);
    let mut blob = blob.to_vec();
    let range = open_in_place(
        MANIFEST_MAGIC,
        &key.manifest_cipher(),
        key,
        &id.0,
        &mut blob,
        &object,
    )?;
    let payload = &blob[range];
    if payload.len() < 8 {
        return Err(Error::integrity(object, "payload too short"));
    }
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(&payload[..8]);
    let len = u64::from_le_bytes(len8) as usize;
    if len > MAX_MANIFEST_LEN {
        return Err(Error::integrity(
            object,
            format!("declared length {len} too large"),
        ));
    }
    let json = zstd::bulk::decompress(&payload[8..], len)
        .map_err(|e| Error::integrity(object.clone(), format!("zstd: {e}")))?;
    if json.len() != len {
        return Err(Error::integrity(
            object,
            "decoded length differs from the declared length",
        ));
    }
    Ok(json)
}
