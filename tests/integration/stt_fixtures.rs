//! The Opus fixtures: how they are made (ignored test driven by
//! `scripts/stt/make_fixtures.sh`) and a check that they decode.

use crate::stt_common;

use std::io::Write;

/// Encodes the raw PCM utterances listed in `$STT_FIXTURE_LIST` with the
/// pendant's Opus settings into `$STT_FIXTURE_OUT/utterances.{bin,tsv}`.
#[test]
#[ignore = "run by scripts/stt/make_fixtures.sh"]
fn make_fixtures() {
    let list = std::env::var("STT_FIXTURE_LIST").expect("STT_FIXTURE_LIST");
    let out = std::path::PathBuf::from(std::env::var("STT_FIXTURE_OUT").expect("STT_FIXTURE_OUT"));
    let mut enc =
        opus::Encoder::new(16000, opus::Channels::Mono, opus::Application::LowDelay).unwrap();
    enc.set_bitrate(opus::Bitrate::Bits(32_000)).unwrap();
    enc.set_vbr(true).unwrap();
    enc.set_complexity(3).unwrap();
    let mut bin = Vec::new();
    let mut tsv = String::from("# index\tvoice\tfirst_frame\tframes\ttext\n");
    let mut frame_no = 0usize;
    for (i, line) in std::fs::read_to_string(list).unwrap().lines().enumerate() {
        let c: Vec<&str> = line.split('\t').collect();
        let raw = std::fs::read(c[0]).unwrap();
        let mut pcm: Vec<i16> = raw
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        pcm.resize(pcm.len().div_ceil(320) * 320, 0);
        let first = frame_no;
        for chunk in pcm.chunks_exact(320) {
            let f = enc.encode_vec(chunk, 160).unwrap();
            bin.extend_from_slice(&(f.len() as u32).to_le_bytes());
            bin.extend_from_slice(&f);
            frame_no += 1;
        }
        tsv.push_str(&format!(
            "{i}\t{}\t{first}\t{}\t{}\n",
            c[1],
            frame_no - first,
            c[2]
        ));
    }
    std::fs::File::create(out.join("utterances.bin"))
        .unwrap()
        .write_all(&bin)
        .unwrap();
    std::fs::write(out.join("utterances.tsv"), tsv).unwrap();
    eprintln!("{frame_no} frames, {} bytes", bin.len());
}

#[test]
fn fixtures_decode_to_the_listed_sentences() {
    let u = stt_common::utterances();
    assert_eq!(u.len(), 60);
    for x in &u {
        let secs = x.samples.len() as f32 / 16000.0;
        assert!((0.8..=4.5).contains(&secs), "{} lasts {secs} s", x.text);
        let rms = (x.samples.iter().map(|s| s * s).sum::<f32>() / x.samples.len() as f32).sqrt();
        assert!(rms > 0.01, "{} is audible (rms {rms})", x.text);
    }
}
