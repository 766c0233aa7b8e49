//! Links the `selflog` binary as a position-dependent executable on Linux with glibc.
//!
//! Every `selflog` command is a process of its own, so its start is part of what a person
//! waits for (issue 21). As a position-independent executable the dynamic loader applies
//! ~34,000 relative relocations at each start, writing every page of `.data.rel.ro`
//! (~125 pages, each a copy-on-write fault): ~0.6 ms of the 1.65 ms of CPU `selflog
//! --version` took, and what kept `inspect list --limit 50` on a 10M-event store at the
//! 5 ms target (`benches/RESULTS.md`, issue 21, fifth session). Linked `-no-pie` the executable needs
//! no relocations of its own; shared libraries, heap and stack keep their random addresses,
//! only the executable's own image loads at a fixed address.
//!
//! `SELFLOG_PIE=1` at build time keeps the toolchain's default (a PIE), for a packager
//! whose policy requires one.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SELFLOG_PIE");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let keep_pie = !matches!(var("SELFLOG_PIE").as_str(), "" | "0");
    if var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu" && !keep_pie {
        // Placed after rustc's own `-pie`; the C compiler driver takes the last of the two.
        println!("cargo:rustc-link-arg-bin=selflog=-no-pie");
    }
}
