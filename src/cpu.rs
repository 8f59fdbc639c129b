//! The processor the local Whisper engine needs, checked before any
//! whisper.cpp code runs.
//!
//! whisper.cpp's CPU kernels are compiled for a fixed instruction set. A
//! local build (`cargo build`, `cargo install`) targets the build machine
//! (`GGML_NATIVE`); the Debian package (`packaging/build-deb`) targets the
//! [`BASELINE`] instead, x86-64-v3: AVX2, FMA, F16C, BMI2 and what comes
//! with them (Intel Haswell, AMD Excavator and Zen, 2013 on). On an older
//! processor whisper.cpp would die with an illegal instruction, so
//! [`require_whisper`] refuses first with one line saying what is missing.
//! Nothing else in omi-sync needs more than plain x86-64: import, pull, VAD,
//! the timeline and push keep working, and the cloud engines
//! (`--engine deepgram|openai`) still transcribe.
//!
//! [`detect`] runs once, at start-up (`main` calls it first thing); every
//! check after that reads the cached result.

use std::sync::OnceLock;

/// One instruction-set extension the packaged whisper.cpp is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    /// Its name as `is_x86_feature_detected!` and `/proc/cpuinfo` spell it.
    pub name: &'static str,
    /// The whisper.cpp (ggml) CMake option that compiles it in.
    pub ggml_flag: &'static str,
}

/// What the baseline is called in messages.
pub const BASELINE_NAME: &str = "x86-64-v3 (AVX2, FMA, F16C, BMI2)";

/// The extensions of the packaged build (`packaging/build-deb` turns on
/// exactly these `GGML_*` options, with `GGML_NATIVE=OFF`).
pub const BASELINE: &[Feature] = &[
    Feature {
        name: "sse4.2",
        ggml_flag: "GGML_SSE42",
    },
    Feature {
        name: "avx",
        ggml_flag: "GGML_AVX",
    },
    Feature {
        name: "avx2",
        ggml_flag: "GGML_AVX2",
    },
    Feature {
        name: "fma",
        ggml_flag: "GGML_FMA",
    },
    Feature {
        name: "f16c",
        ggml_flag: "GGML_F16C",
    },
    Feature {
        name: "bmi2",
        ggml_flag: "GGML_BMI2",
    },
];

/// The local Whisper engine cannot run on this processor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "this processor lacks {} (the local Whisper engine of this build needs {BASELINE_NAME}); \
     transcribe with --engine deepgram or --engine openai, or build omi-sync on this machine \
     (cargo install --path .)",
    missing.join(", ")
)]
pub struct CpuTooOld {
    /// The extensions it lacks, by name.
    pub missing: Vec<&'static str>,
}

static MISSING: OnceLock<Vec<&'static str>> = OnceLock::new();

/// Detects the processor's extensions (once; later calls are free) and
/// returns those of the [`BASELINE`] it lacks.
pub fn detect() -> &'static [&'static str] {
    MISSING.get_or_init(|| {
        let missing = missing_from(has);
        if !missing.is_empty() {
            tracing::debug!(?missing, "processor below the Whisper baseline");
        }
        missing
    })
}

/// Refuses when the processor lacks part of the [`BASELINE`]: call it before
/// any whisper.cpp code runs.
pub fn require_whisper() -> Result<(), CpuTooOld> {
    match detect() {
        [] => Ok(()),
        missing => Err(CpuTooOld {
            missing: missing.to_vec(),
        }),
    }
}

/// The [`BASELINE`] extensions for which `has` says no.
fn missing_from(has: impl Fn(&str) -> bool) -> Vec<&'static str> {
    BASELINE
        .iter()
        .filter(|f| !has(f.name))
        .map(|f| f.name)
        .collect()
}

/// Whether this processor (and the OS, for AVX state) supports `name`.
#[cfg(target_arch = "x86_64")]
fn has(name: &str) -> bool {
    match name {
        "sse4.2" => std::arch::is_x86_feature_detected!("sse4.2"),
        "avx" => std::arch::is_x86_feature_detected!("avx"),
        "avx2" => std::arch::is_x86_feature_detected!("avx2"),
        "fma" => std::arch::is_x86_feature_detected!("fma"),
        "f16c" => std::arch::is_x86_feature_detected!("f16c"),
        "bmi2" => std::arch::is_x86_feature_detected!("bmi2"),
        _ => false,
    }
}

/// Other architectures build whisper.cpp for what they have: nothing to check.
#[cfg(not(target_arch = "x86_64"))]
fn has(_name: &str) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_baseline_feature_is_detectable() {
        // An unknown name would always count as missing.
        for f in BASELINE {
            let only = missing_from(|n| n != f.name);
            assert_eq!(only, [f.name]);
        }
        assert!(missing_from(|_| true).is_empty());
    }

    #[test]
    fn the_message_is_one_line_naming_what_is_missing() {
        let e = CpuTooOld {
            missing: missing_from(|n| !matches!(n, "avx" | "avx2" | "fma" | "f16c" | "bmi2")),
        };
        let m = e.to_string();
        assert!(!m.contains('\n'));
        assert!(
            m.starts_with("this processor lacks avx, avx2, fma, f16c, bmi2"),
            "{m}"
        );
        assert!(m.contains("--engine deepgram"), "{m}");
    }

    #[test]
    fn the_package_build_turns_on_exactly_the_baseline() {
        let script = include_str!("../packaging/build-deb");
        let mut on: Vec<&str> = script
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '='))
            .filter_map(|w| w.strip_suffix("=ON"))
            .filter(|w| w.starts_with("GGML_") && *w != "GGML_LLAMAFILE")
            .collect();
        on.sort();
        on.dedup();
        let mut want: Vec<&str> = BASELINE.iter().map(|f| f.ggml_flag).collect();
        want.sort();
        assert_eq!(on, want);
        assert!(script.contains("GGML_NATIVE=OFF"));
    }
}
