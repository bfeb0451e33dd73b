//! Runs the real `flotilla` binary as a child process: the one place tests and
//! benchmarks find the binary, start `flotilla server` on a loopback port with
//! its own data dir, wait for `/readyz`, and make sure the process goes away.
//!
//! ```no_run
//! use testkit::{Profile, ServerProcess};
//!
//! let server = ServerProcess::builder()
//!     .bin(testkit::flotilla_bin(Profile::Debug))
//!     .args(["--disable-agent", "--disable-scheduler"])
//!     .start();
//! println!("{} with {}", server.url(), server.kubeconfig().display());
//! // Killed when `server` is dropped.
//! ```
//!
//! Everything here blocks the calling thread; async tests call it through
//! `tokio::task::spawn_blocking`.

mod bin;
pub mod image;
mod process;
mod readyz;
pub mod registry;

pub use bin::{Profile, flotilla_bin};
pub use process::{Builder, Error, ServerProcess};
pub use readyz::Readyz;
