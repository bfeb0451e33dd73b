//! The generic REST handlers driven in-process over a real SQLite store: status
//! codes, concurrency, pagination, watch resumption, deletion semantics.

mod bad_bodies;
mod dry_run;
mod harness;
mod probes;
mod reads;
mod samples;
mod watches;
mod writes;
