//! The generic REST handlers driven in-process over a real SQLite store: status
//! codes, concurrency, pagination, watch resumption, deletion semantics.

mod dry_run;
mod harness;
mod probes;
mod reads;
mod watches;
mod writes;
