//! The font the charts draw their text with. plotters measures and rasterises text with `ab_glyph` (pure Rust, no
//! system library), from a font file registered once per process: DejaVu Sans (Debian's `fonts-dejavu-core`, on
//! the machines this project runs on), or the file `CHART_FONT` names.

use std::sync::OnceLock;

use plotters::style::FontStyle;

/// Where DejaVu Sans is on Debian.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Registers the charts' font as plotters' `sans-serif`. Idempotent; the error says what to install.
pub fn register() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let path = std::env::var("CHART_FONT").unwrap_or_else(|_| DEFAULT_FONT.to_owned());
            let bytes = std::fs::read(&path).map_err(|error| {
                format!(
                    "cannot read the chart font {path}: {error} (apt-get install fonts-dejavu-core, or set CHART_FONT)"
                )
            })?;
            // Registered for the life of the process: plotters keeps a `&'static` reference.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            for style in [FontStyle::Normal, FontStyle::Bold] {
                plotters::style::register_font("sans-serif", style, bytes)
                    .map_err(|_| format!("{path} is not a font plotters can read"))?;
            }
            Ok(())
        })
        .clone()
}
