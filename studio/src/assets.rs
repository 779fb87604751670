//! The pages and their script and style, compiled into the binary: nothing
//! is fetched from elsewhere at run time.

/// The Write page.
pub const WRITE_PAGE: &str = include_str!("../assets/write.html");
/// The Pipeline page.
pub const PIPELINE_PAGE: &str = include_str!("../assets/pipeline.html");

/// `/assets/NAME`: its content type and bytes.
pub fn get(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "studio.js" => Some((
            "text/javascript; charset=utf-8",
            include_str!("../assets/studio.js"),
        )),
        "studio.css" => Some((
            "text/css; charset=utf-8",
            include_str!("../assets/studio.css"),
        )),
        _ => None,
    }
}
