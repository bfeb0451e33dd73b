//! Writes the busybox test image (from the host's /bin/busybox) as an
//! oci-archive: `cargo run -p testkit --example busybox_archive -- FILE [NAME]`.

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(file) = args.next() else {
        eprintln!("usage: busybox_archive FILE [NAME]");
        std::process::exit(2);
    };
    let name = args
        .next()
        .unwrap_or_else(|| "docker.io/library/busybox:latest".into());
    if let Err(e) = testkit::image::busybox_oci_archive(std::path::Path::new(&file), &name) {
        eprintln!("busybox_archive: {e}");
        std::process::exit(1);
    }
    println!("wrote {name} to {file}");
}
