//! # jfiv-restore: restore plans, the degraded procedure and restore drills
//!
//! **Not built yet** (issue "jfiv-restore"). This crate will compute restore plans (which tape
//! from which room, what to restore where, RPO and RTO), execute them resumably, and run drills.
