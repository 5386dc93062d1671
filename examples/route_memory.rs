//! Heap bytes per compiled route, counted by dhat's allocator in testing mode (valgrind's
//! massif does not see through mimalloc, and this needs nothing installed).
//!
//! `cargo run --release --example route_memory -- [N]` compiles N prefix routes (default 10,000),
//! each with an inline `headers` policy in front of one shared upstream, and prints the bytes
//! the parsed config and the compiled snapshot hold, per route.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn live() -> isize {
    dhat::HeapStats::get().curr_bytes as isize
}

/// `n` prefix routes to one upstream, each with an inline `headers` policy when `policy`.
fn config(n: usize, policy: bool) -> String {
    let mut t = String::from(
        "[[listeners]]\naddress = \"127.0.0.1:1\"\n[admin]\nenabled = false\n\
         [upstreams.api]\ntargets = [\"127.0.0.1:9\"]\n",
    );
    for i in 0..n {
        t.push_str(&format!(
            "[[routes]]\nname = \"r{i}\"\nmatch = {{ path_prefix = \"/api/v{i}\" }}\nupstream = \"api\"\n"
        ));
        if policy {
            t.push_str(&format!(
                "policies = [{{ type = \"headers\", request = {{ set = {{ \"x-route\" = \"r{i}\" }} }} }}]\n"
            ));
        }
    }
    t
}

fn measure(n: usize, policy: bool, shared: &tokengate::shared::Shared) {
    let text = config(n, policy);
    let per = |b: isize| b as f64 / n.max(1) as f64;
    let base = live();
    let raw = tokengate::config::parse_str(&text).unwrap();
    let parsed = live() - base;
    let t = std::time::Instant::now();
    let snap = tokengate::compile::compile(&raw, "h", 1, None, shared).unwrap();
    let compile_time = t.elapsed();
    drop(raw);
    let kept = live() - base;
    let t = std::time::Instant::now();
    drop(snap);
    let drop_time = t.elapsed();
    println!(
        "{n} routes{}: text {} B; parsed config {parsed} B ({:.0}/route); \
         snapshot {kept} B ({:.0}/route); compile {compile_time:.2?}, drop {drop_time:.2?}",
        if policy { " with a headers policy" } else { "" },
        text.len(),
        per(parsed),
        per(kept),
    );
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("N"))
        .unwrap_or(10_000);
    let _profiler = dhat::Profiler::builder().testing().build();
    let shared = tokengate::shared::Shared::detached().unwrap();
    measure(n, false, &shared);
    measure(n, true, &shared);
    println!(
        "size_of: Route {} Policy {} Matcher {} Chain {}",
        std::mem::size_of::<tokengate::compile::Route>(),
        std::mem::size_of::<tokengate::policy::Policy>(),
        std::mem::size_of::<tokengate::router::Matcher>(),
        std::mem::size_of::<tokengate::policy::Chain>(),
    );
}
