//! The Markdown table the benchmark prints, filled in phase by phase so a run
//! that fails part-way still shows what it measured.

use std::fmt::Write;
use std::time::Duration;

use super::latency::Latency;
use super::list::ListResult;
use super::load::Loaded;
use super::server::{Memory, proc_cpu_seconds};
use super::stats::Samples;
use super::watch::Fanout;
use super::{ApiArgs, Cpu};

pub struct Report {
    header: String,
    rows: Vec<[String; 3]>,
    verbs: Vec<String>,
    /// The server's VmHWM at the last sample.
    peak: u64,
    started: std::time::Instant,
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

fn cpu_text(c: Cpu) -> String {
    format!(
        "server {:.1} s, benchmark client {:.1} s",
        c.server, c.bench
    )
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn spread(s: &mut Samples) -> String {
    let m = s.summary();
    format!(
        "p50 {} · p90 {} · p99 {} · max {}",
        ms(m.p50),
        ms(m.p90),
        ms(m.p99),
        ms(m.max)
    )
}

fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpus} CPUs ({model})")
}

impl Report {
    pub fn new(backend: &str, args: &ApiArgs) -> Report {
        let header = format!(
            "Store: {backend}. Machine: {}. Pods: {}, clients: {}, latency phase: {:?}, watchers: {}, watch writes: {} at {}/s.",
            machine(),
            args.pods,
            args.clients,
            args.duration,
            args.watchers,
            args.watch_events,
            args.watch_rate,
        );
        Report {
            header,
            rows: Vec::new(),
            verbs: Vec::new(),
            peak: 0,
            started: std::time::Instant::now(),
        }
    }

    fn row(&mut self, phase: &str, what: &str, value: String) {
        self.rows.push([phase.into(), what.into(), value]);
    }

    pub fn rss(&mut self, when: &str, m: Memory) {
        self.row("Memory", &format!("server RSS {when}"), mib(m.rss));
        self.peak = self.peak.max(m.peak);
    }

    pub fn store_size(&mut self, when: &str, bytes: Option<u64>) {
        let value = match bytes {
            Some(b) => mib(b),
            None => "external etcd (measure its data dir)".to_string(),
        };
        self.row("Store", &format!("size on disk {when}"), value);
    }

    pub fn load(&mut self, l: &Loaded, cpu: Cpu) {
        let secs = l.elapsed.as_secs_f64();
        self.row(
            "Load",
            "pods created",
            format!(
                "{} in {secs:.1} s = **{:.0} pods/s** ({} B each as sent)",
                l.pods,
                l.pods as f64 / secs.max(1e-9),
                l.request_bytes
            ),
        );
        let mut lat = l.latency.clone();
        self.row("Load", "create latency", spread(&mut lat));
        self.row("Load", "CPU used", cpu_text(cpu));
    }

    pub fn latency(&mut self, l: &Latency, cpu: Cpu) {
        let secs = l.elapsed.as_secs_f64().max(1e-9);
        for (verb, s) in [
            ("create", &l.create),
            ("update", &l.update),
            ("get", &l.get),
        ] {
            let mut s = s.clone();
            let m = s.summary();
            self.verbs.push(format!(
                "| {verb} | {} | {:.0} | {} | {} | **{}** | {} |",
                m.count,
                m.count as f64 / secs,
                ms(m.p50),
                ms(m.p90),
                ms(m.p99),
                ms(m.max)
            ));
        }
        self.row(
            "Latency",
            "update conflicts (409, retried)",
            l.conflicts.to_string(),
        );
        let failed = if l.failed == 0 {
            "0".to_string()
        } else {
            format!("**{}**, e.g. {:?}", l.failed, l.errors.first())
        };
        self.row("Latency", "failed requests", failed);
        self.row("Latency", "CPU used", cpu_text(cpu));
    }

    pub fn lists(&mut self, lists: &[ListResult], cpu: Cpu) {
        for l in lists {
            self.row(
                "List",
                l.what,
                format!(
                    "**{:.2} s** (first response after {:.2} s), {} items, {}, {} request(s); CPU {}",
                    l.elapsed.as_secs_f64(),
                    l.first_byte.as_secs_f64(),
                    l.items,
                    mib(l.bytes as u64),
                    l.requests,
                    cpu_text(l.cpu)
                ),
            );
        }
        self.row("List", "CPU used", cpu_text(cpu));
    }

    pub fn watch(&mut self, f: &Fanout, cpu: Cpu) {
        self.row(
            "Watch",
            "watchers",
            format!(
                "{} ({} cluster-wide, {} namespaced), open in {:.1} s",
                f.watchers,
                f.cluster_wide,
                f.watchers - f.cluster_wide,
                f.open_time.as_secs_f64()
            ),
        );
        self.rss("with the watches open", f.memory_open);
        let mut w = f.write_latency.clone();
        self.row(
            "Watch",
            "pods written meanwhile",
            format!(
                "{} in {:.1} s; create {}",
                f.written,
                f.write_time.as_secs_f64(),
                spread(&mut w)
            ),
        );
        let lost = f.missing > 0 || f.duplicates > 0 || !f.errors.is_empty();
        self.row(
            "Watch",
            "deliveries",
            format!(
                "{} of {} expected; {} missing, {} duplicated{}",
                f.delivered,
                f.expected,
                f.missing,
                f.duplicates,
                if lost { " — **EVENTS LOST**" } else { "" }
            ),
        );
        let mut lat = f.latency.clone();
        self.row(
            "Watch",
            "write ack → watcher",
            format!(
                "{} ({} arrived before the ack)",
                spread(&mut lat),
                f.before_ack
            ),
        );
        if let Some(e) = f.errors.first() {
            self.row(
                "Watch",
                "errors",
                format!("**{}**, first: {e}", f.errors.len()),
            );
        }
        self.row("Watch", "CPU used", cpu_text(cpu));
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}\n", self.header);
        if !self.verbs.is_empty() {
            let _ = writeln!(
                out,
                "| Verb | Requests | Per second | p50 | p90 | p99 | Max |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
            );
            for v in &self.verbs {
                let _ = writeln!(out, "{v}");
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "| Phase | Measure | Result |\n| --- | --- | --- |");
        for [phase, what, value] in &self.rows {
            let _ = writeln!(out, "| {phase} | {what} | {value} |");
        }
        if self.peak > 0 {
            let _ = writeln!(out, "| Memory | server peak RSS | {} |", mib(self.peak));
        }
        let _ = writeln!(
            out,
            "| Total | benchmark run | {:.0} s, benchmark client CPU {:.1} s |",
            self.started.elapsed().as_secs_f64(),
            proc_cpu_seconds("/proc/self/stat")
        );
        out
    }
}
