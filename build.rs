//! torch-sys puts no usable rpath on binaries, so `amt` and the test binaries
//! get one to the libtorch that tch was built against (the venv's torch).
//! The engine's code never uses torch; the music stages linked into `amt` do.

fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
