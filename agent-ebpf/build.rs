//! Rebuild the eBPF object when the linker changes (a rebuilt bpf-linker may link another LLVM).
use which::which;

fn main() {
    if let Ok(linker) = which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
