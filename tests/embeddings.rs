//! The embedding engine against ONNX Runtime's output for the same model
//! file (tests/data/minilm-int8-ort.jsonl): equal token ids, cosine >= 0.999
//! one at a time and batched together with f32 products; with int8
//! products, close to it and the same neighbours.

use std::sync::OnceLock;

use caxton::config::{EmbeddingConfig, EmbeddingPrecision};
use caxton::embed::{EmbedError, EmbeddingEngine, Encoder, ModelSpec};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    text: String,
    input_ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn references() -> Vec<Reference> {
    let text = include_str!("data/minilm-int8-ort.jsonl");
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn model_dir() -> std::path::PathBuf {
    caxton::harness::model_dir()
}

/// f32 products: what the model file computes, so ONNX Runtime's vectors.
fn encoder() -> &'static Encoder {
    static ENCODER: OnceLock<Encoder> = OnceLock::new();
    ENCODER.get_or_init(|| load(EmbeddingPrecision::F32))
}

/// int8 products, whatever this CPU would pick.
fn int8_encoder() -> &'static Encoder {
    static ENCODER: OnceLock<Encoder> = OnceLock::new();
    ENCODER.get_or_init(|| load(EmbeddingPrecision::Int8))
}

fn load(precision: EmbeddingPrecision) -> Encoder {
    let spec = ModelSpec::named("all-MiniLM-L6-v2").unwrap();
    Encoder::load(&spec, &model_dir(), 256, &[1, 16], precision)
        .expect("loading the model; run ./scripts/setup (python3 models/fetch.py) to fetch it")
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn token_ids_match_the_reference_tokenizer() {
    let references = references();
    assert_eq!(references.len(), 60);
    for reference in &references {
        let ids = encoder().token_ids(&reference.text).unwrap();
        assert_eq!(ids, reference.input_ids, "text {:?}", reference.text);
    }
}

#[test]
fn one_at_a_time_matches_onnx_runtime() {
    for reference in references() {
        let embedded = encoder().embed(&[&reference.text]).unwrap();
        assert_eq!(embedded[0].vector.len(), 384);
        assert_eq!(embedded[0].tokens, reference.input_ids.len());
        let similarity = cosine(&embedded[0].vector, &reference.embedding);
        assert!(
            similarity >= 0.999,
            "cosine {similarity} for {:?}",
            reference.text
        );
    }
}

#[test]
fn batched_together_padding_does_not_change_a_vector() {
    let references = references();
    let texts: Vec<&str> = references.iter().map(|r| r.text.as_str()).collect();
    // 60 texts: three full batches of 16 and one of 12 padded up to 16,
    // each row padded to the longest text of its batch.
    let embedded = encoder().embed(&texts).unwrap();
    assert_eq!(embedded.len(), references.len());
    for (reference, embedded) in references.iter().zip(&embedded) {
        let similarity = cosine(&embedded.vector, &reference.embedding);
        assert!(
            similarity >= 0.999,
            "cosine {similarity} for {:?} in a batch",
            reference.text
        );
        let norm: f32 = embedded.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "not normalised: {norm}");
    }
}

#[test]
fn int8_products_stay_close_to_onnx_runtime_and_keep_the_neighbours() {
    let references = references();
    assert_eq!(int8_encoder().precision(), "int8");
    let ours: Vec<Vec<f32>> = references
        .iter()
        .map(|r| int8_encoder().embed(&[&r.text]).unwrap().remove(0).vector)
        .collect();
    let mut total = 0.0;
    for (reference, vector) in references.iter().zip(&ours) {
        let similarity = cosine(vector, &reference.embedding);
        // Measured: 0.9978 at worst, 0.9993 on average. A wrong zero point
        // or scale gives 0.9 or less.
        assert!(
            similarity >= 0.995,
            "cosine {similarity} for {:?}",
            reference.text
        );
        total += similarity;
    }
    let mean = total / references.len() as f32;
    assert!(mean >= 0.999, "mean cosine {mean}");

    // What search sees: each text's nearest other text with int8 vectors
    // is, by ONNX Runtime's vectors, as near as the nearest there (texts
    // with no real neighbour, such as the one Russian sentence, have
    // near-ties that may swap).
    let theirs: Vec<&[f32]> = references.iter().map(|r| r.embedding.as_slice()).collect();
    let nearest = |vectors: &[&[f32]], i: usize| {
        (0..vectors.len())
            .filter(|&j| j != i)
            .max_by(|&a, &b| {
                cosine(vectors[i], vectors[a]).total_cmp(&cosine(vectors[i], vectors[b]))
            })
            .unwrap()
    };
    let ours: Vec<&[f32]> = ours.iter().map(Vec::as_slice).collect();
    for (i, reference) in references.iter().enumerate() {
        let best = cosine(theirs[i], theirs[nearest(&theirs, i)]);
        let picked = nearest(&ours, i);
        let got = cosine(theirs[i], theirs[picked]);
        assert!(
            got >= best - 0.01,
            "{:?}: int8's nearest {:?} is at {got}, the reference's at {best}",
            reference.text,
            references[picked].text
        );
    }
}

#[test]
fn int8_rows_are_quantised_alone_so_a_batch_changes_no_vector() {
    let references = references();
    let texts: Vec<&str> = references.iter().map(|r| r.text.as_str()).collect();
    // Padded batches of 16: each token's scale is its own, so the other
    // texts and the padding move a vector only as far as a value summed in
    // another order by the f32 parts rounds to another step (0.9990 at
    // worst, measured). A scale shared across rows, or a row read at the
    // wrong offset, moves rows past the first far more.
    let batched = int8_encoder().embed(&texts).unwrap();
    for (text, together) in texts.iter().zip(&batched) {
        let alone = int8_encoder().embed(&[text]).unwrap().remove(0);
        let similarity = cosine(&alone.vector, &together.vector);
        assert!(similarity >= 0.997, "{text:?}: {similarity}");
    }
}

#[test]
fn long_texts_are_truncated_to_the_maximum_sequence_length() {
    let long = "word ".repeat(1000);
    let embedded = encoder().embed(&[&long]).unwrap();
    assert_eq!(embedded[0].tokens, 256);
}

#[test]
fn a_missing_model_is_a_startup_error_that_says_how_to_fetch_it() {
    let empty = tempfile::tempdir().unwrap();
    let error = EmbeddingEngine::start(&EmbeddingConfig::default(), empty.path())
        .err()
        .expect("no model, no engine");
    assert!(matches!(error, EmbedError::MissingFile { .. }), "{error}");
    assert!(error.to_string().contains("caxton models fetch"), "{error}");
}

#[test]
fn a_corrupt_model_is_refused_by_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        model_dir().join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    let mut onnx = std::fs::read(model_dir().join("model.onnx")).unwrap();
    let middle = onnx.len() / 2;
    onnx[middle] ^= 0xFF;
    std::fs::write(dir.path().join("model.onnx"), onnx).unwrap();
    let error = EmbeddingEngine::start(&EmbeddingConfig::default(), dir.path())
        .err()
        .expect("corrupt model, no engine");
    assert!(matches!(error, EmbedError::Checksum { .. }), "{error}");
    assert!(error.to_string().contains("caxton models fetch"), "{error}");
}

#[tokio::test]
async fn the_engine_batches_concurrent_requests_and_caches_results() {
    let config = EmbeddingConfig {
        batch_size: 4,
        precision: EmbeddingPrecision::F32,
        ..EmbeddingConfig::default()
    };
    let engine = EmbeddingEngine::start(&config, &model_dir()).unwrap();
    let references = references();
    let texts: Vec<String> = references.iter().take(6).map(|r| r.text.clone()).collect();

    let calls: Vec<_> = texts
        .iter()
        .map(|text| {
            let engine = engine.clone();
            let text = text.clone();
            tokio::spawn(async move { engine.embed(&[text]).await })
        })
        .collect();
    for (call, reference) in calls.into_iter().zip(&references) {
        let embedded = call.await.unwrap().unwrap();
        assert!(cosine(&embedded[0].vector, &reference.embedding) >= 0.999);
    }
    let stats = engine.cache_stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (0, 6, 6));

    // Again, with a duplicate and a new text: hits come from the cache.
    let again = vec![
        texts[0].clone(),
        texts[0].clone(),
        references[7].text.clone(),
    ];
    let embedded = engine.embed(&again).await.unwrap();
    assert_eq!(embedded[0].vector, embedded[1].vector);
    assert!(cosine(&embedded[2].vector, &references[7].embedding) >= 0.999);
    let stats = engine.cache_stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (2, 7, 7));
    assert!(engine.load_time().is_some());
}

#[test]
fn several_cores_per_inference_give_the_reference_embeddings() {
    let spec = ModelSpec::named("all-MiniLM-L6-v2").unwrap();
    let threaded = Encoder::load(
        &spec,
        &model_dir(),
        256,
        &Encoder::plan_batch_sizes(16, 2),
        EmbeddingPrecision::F32,
    )
    .unwrap()
    .with_inference_threads(2);
    assert_eq!(threaded.inference_threads(), 2);
    let references = references();
    let texts: Vec<&str> = references.iter().map(|r| r.text.as_str()).collect();
    // One at a time (the split matrix products) and batched together (two
    // halves of eight, one per core), and an odd count (eight and seven).
    let batched = threaded.embed(&texts[..16]).unwrap();
    let odd = threaded.embed(&texts[..15]).unwrap();
    assert_eq!(odd.len(), 15);
    for (n, embedded) in odd.iter().enumerate() {
        assert_eq!(embedded.tokens, batched[n].tokens);
        assert!(cosine(&embedded.vector, &batched[n].vector) >= 0.9999);
    }
    for (n, reference) in references.iter().enumerate() {
        let one = threaded.embed(&[&reference.text]).unwrap().remove(0);
        let similarity = cosine(&one.vector, &reference.embedding);
        assert!(
            similarity >= 0.999,
            "{:?}: cosine {similarity}",
            reference.text
        );
        if n < 16 {
            let together = cosine(&batched[n].vector, &reference.embedding);
            assert!(
                together >= 0.999,
                "{:?}: batched cosine {together}",
                reference.text
            );
        }
    }
}

#[test]
fn a_recorded_check_spares_the_hash_until_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["tokenizer.json", "model.onnx"] {
        std::fs::copy(model_dir().join(file), dir.path().join(file)).unwrap();
    }
    let spec = ModelSpec::named("all-MiniLM-L6-v2").unwrap();
    spec.verify(dir.path()).unwrap();
    let stamps = std::fs::read_to_string(dir.path().join(".verified")).unwrap();
    assert_eq!(stamps.lines().count(), 2, "{stamps}");
    assert!(stamps.contains("model.onnx 22928619 "), "{stamps}");
    // The same bytes flipped in place: same size, a new modification
    // time, so the file is hashed again and refused.
    let mut onnx = std::fs::read(dir.path().join("model.onnx")).unwrap();
    let middle = onnx.len() / 2;
    onnx[middle] ^= 0xFF;
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(dir.path().join("model.onnx"), &onnx).unwrap();
    let error = spec.verify(dir.path()).expect_err("a changed model");
    assert!(matches!(error, EmbedError::Checksum { .. }), "{error}");
    // A record that does not describe the file on disk is ignored too.
    onnx[middle] ^= 0xFF;
    std::fs::write(dir.path().join("model.onnx"), &onnx).unwrap();
    std::fs::write(
        dir.path().join(".verified"),
        "model.onnx 1 1 0000\ntokenizer.json 1 1 0000\n",
    )
    .unwrap();
    spec.verify(dir.path()).unwrap();
    let stamps = std::fs::read_to_string(dir.path().join(".verified")).unwrap();
    assert!(!stamps.contains(" 0000"), "{stamps}");
}
