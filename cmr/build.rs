//! With the `torch` feature, records libtorch's folder in the binaries' run path, so that `labd-cmr` and the
//! tests run without LD_LIBRARY_PATH; when libtorch has its CUDA library, links it even though no symbol of it is
//! used directly (otherwise the linker drops it and CUDA reports unavailable).
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if std::env::var_os("CARGO_FEATURE_TORCH").is_none() {
        return;
    }
    if let Some(dir) = std::env::var_os("LIBTORCH") {
        let lib = std::path::Path::new(&dir).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        if lib.join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        }
    }
}
