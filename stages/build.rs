//! torch-sys puts no usable rpath on binaries, so `amt-stage` and this
//! package's tests and benches get one to the libtorch tch was built against.
//! The same directory is where `amt-stage --probe` reads libtorch's version.

fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:rustc-env=AMT_LIBTORCH_LIB={lib}");
    } else {
        println!("cargo:rustc-env=AMT_LIBTORCH_LIB=");
    }
}
