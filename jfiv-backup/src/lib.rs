//! # jfiv-backup: encrypted, deduplicated, verifiable backups to disk and tape
//!
//! **Not built yet** (issues "jfiv-backup core" and "jfiv-backup tape"). This crate will hold the
//! backup format, the chunk/compress/encrypt pipeline, the sources (directories, SQLite, commands),
//! and the targets (disk, tape).
