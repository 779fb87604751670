//! torch-sys puts no usable rpath on binaries, so `amt-studio` and this
//! package's tests get one to the libtorch tch was built against.

fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
