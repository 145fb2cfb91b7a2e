//! Links Debian's DPDK (>= 22.11, found with pkg-config) and compiles the
//! C shim in `dpdk/` that turns DPDK's inline fast-path functions into
//! symbols Rust can call.

const SETUP_HINT: &str = "run `scripts/setup` (it installs libdpdk-dev, dpdk and pkg-config)";

fn main() {
    println!("cargo:rerun-if-changed=dpdk/shim.c");
    println!("cargo:rerun-if-changed=dpdk/shim.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let lib = match pkg_config::Config::new()
        .atleast_version("22.11")
        .cargo_metadata(false)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => {
            eprintln!(
                "error: DPDK 22.11 or newer was not found by pkg-config ({e}); {SETUP_HINT}."
            );
            std::process::exit(1);
        }
    };

    // Compile the shim with DPDK's full cflags: Debian's carry
    // `-include rte_config.h` and `-march=...`, which the headers rely on.
    let cflags = pkg_config_output(&["--cflags", "libdpdk"]);
    let mut build = cc::Build::new();
    build.file("dpdk/shim.c").include("dpdk").warnings(true);
    let mut words = cflags.split_whitespace();
    while let Some(w) = words.next() {
        if w == "-include" {
            if let Some(h) = words.next() {
                build.flag("-include").flag(h);
            }
        } else {
            build.flag(w);
        }
    }
    build.compile("ipos_dpdk_shim");

    // Link the DPDK libraries the shim uses. Poll-mode drivers (net_tap,
    // net_ring, net_memif, ...) are not linked: the EAL loads them as plugins
    // from Debian's pmds directory at start-up.
    for path in &lib.link_paths {
        println!("cargo:rustc-link-search=native={}", path.display());
    }
    for name in [
        "rte_ethdev",
        "rte_mbuf",
        "rte_mempool",
        "rte_ring",
        "rte_eal",
        "rte_kvargs",
        "rte_log",
        "rte_telemetry",
        "rte_net",
    ] {
        if lib.libs.iter().any(|l| l == name) {
            println!("cargo:rustc-link-lib=dylib={name}");
        }
    }
}

fn pkg_config_output(args: &[&str]) -> String {
    let out = std::process::Command::new(
        std::env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into()),
    )
    .args(args)
    .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => {
            eprintln!(
                "error: `pkg-config {}` failed; {SETUP_HINT}.",
                args.join(" ")
            );
            std::process::exit(1);
        }
    }
}
