//! The store test suite: one binary. The shared behaviour (`suite`) runs
//! against SQLite and against a real single-member etcd; `sqlite_only` and
//! `etcd_only` cover what is specific to each (crash durability, file
//! handling and compaction; fail-over on a three-member cluster).

mod common;
mod etcd_only;
mod sqlite_only;
mod suite;

/// Generates, for every suite function, one test per backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let h = crate::common::sqlite().await;
                    crate::suite::$name(h.store.clone()).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let h = crate::common::etcd().await;
                    crate::suite::$name(h.store.clone()).await;
                }
            )*
        }
    };
}

on_both_backends!(
    basic_operations,
    conflicts_and_races,
    list_pages_and_history,
    watch_ordering,
    watch_resume,
    compaction_errors,
    large_values,
    watch_progress,
);
