//! # jfiv-auth: who may use JFIV, from where, with which profile
//!
//! **Not built yet** (issue "jfiv-auth"). This crate will hold per-user authentication
//! (`Authenticator`, local accounts with argon2id, the Oracle authenticator), the JFIV
//! profile x permission matrix, throttling and lockout, sessions, and the remote-access policy
//! (VPN address pool plus a personal client certificate).
