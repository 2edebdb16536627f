//! Load-time rewrite of the ONNX graph: look embedding rows up first,
//! dequantise only those rows.
//!
//! The model stores its embedding tables as int8 with a per-row scale and
//! dequantises with `Mul(Cast(q), scale)` before the `Gather`. tract will not
//! constant-fold outputs over 4 MiB, so the 30522×384 word table would be
//! dequantised on every call (~30 ms); folding it at load instead costs
//! ~47 MB of RSS. Rewriting to `Mul(Cast(Gather(q, ids)), Gather(scale, ids))`
//! is exact (per-row scales commute with a row lookup), as fast as folding,
//! and keeps the table int8.

use std::collections::HashMap;

use tract_onnx::pb::{GraphProto, NodeProto, TensorProto};

/// Who makes and who reads each value of a graph, by name.
struct Wiring<'g> {
    initializers: HashMap<&'g str, &'g TensorProto>,
    /// The index of the node that outputs each value.
    producer: HashMap<&'g str, usize>,
    /// How many node inputs read each value.
    consumers: HashMap<&'g str, usize>,
}

impl<'g> Wiring<'g> {
    fn of(graph: &'g GraphProto) -> Self {
        let mut consumers: HashMap<&str, usize> = HashMap::new();
        for node in &graph.node {
            for input in &node.input {
                *consumers.entry(input.as_str()).or_default() += 1;
            }
        }
        Self {
            initializers: graph
                .initializer
                .iter()
                .map(|t| (t.name.as_str(), t))
                .collect(),
            producer: graph
                .node
                .iter()
                .enumerate()
                .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
                .collect(),
            consumers,
        }
    }
}

/// Rewrites every `Gather(Mul(Cast(q), scale), ids)` along axis 0 whose `q`
/// and `scale` are initialisers with a scalar or per-row scale, and whose
/// dequantised table feeds nothing else. Returns how many were rewritten.
pub fn gather_before_dequantize(graph: &mut GraphProto) -> usize {
    let Wiring {
        initializers,
        producer,
        consumers,
    } = Wiring::of(graph);

    // (gather, mul, cast, q, scale) for each rewritable lookup.
    let mut rewrites = Vec::new();
    for (gather_ix, gather) in graph.node.iter().enumerate() {
        if gather.op_type != "Gather" || gather.input.len() != 2 || gather_axis(gather) != 0 {
            continue;
        }
        let table = gather.input[0].as_str();
        let Some(&mul_ix) = producer.get(table) else {
            continue;
        };
        let mul = &graph.node[mul_ix];
        if mul.op_type != "Mul" || mul.input.len() != 2 || consumers.get(table) != Some(&1) {
            continue;
        }
        let Some(&cast_ix) = producer.get(mul.input[0].as_str()) else {
            continue;
        };
        let cast = &graph.node[cast_ix];
        let scale = mul.input[1].as_str();
        if cast.op_type != "Cast" || consumers.get(mul.input[0].as_str()) != Some(&1) {
            continue;
        }
        let (Some(q), Some(s)) = (
            initializers.get(cast.input[0].as_str()),
            initializers.get(scale),
        ) else {
            continue;
        };
        let per_row = s.dims.len() == q.dims.len()
            && s.dims.first() == q.dims.first()
            && s.dims.iter().skip(1).all(|&d| d == 1);
        let scalar = s.dims.iter().all(|&d| d == 1);
        if !(per_row || scalar) {
            continue;
        }
        rewrites.push((
            gather_ix,
            mul_ix,
            cast_ix,
            cast.input[0].clone(),
            scale.to_owned(),
            scalar,
        ));
    }

    let count = rewrites.len();
    let mut dropped = Vec::new();
    for (gather_ix, mul_ix, cast_ix, q, scale, scalar) in rewrites {
        let gather = graph.node[gather_ix].clone();
        let ids = gather.input[1].clone();
        let output = gather.output[0].clone();
        let stem = if gather.name.is_empty() {
            output.clone()
        } else {
            gather.name.clone()
        };
        let rows_q = format!("{stem}.rows_q");
        let rows_f = format!("{stem}.rows_f");
        let rows_scale = format!("{stem}.rows_scale");

        let mut lookup_q = gather.clone();
        lookup_q.name = format!("{stem}.lookup_q");
        lookup_q.input = vec![q, ids.clone()];
        lookup_q.output = vec![rows_q.clone()];

        let mut cast = graph.node[cast_ix].clone();
        cast.name = format!("{stem}.dequant_cast");
        cast.input = vec![rows_q];
        cast.output = vec![rows_f.clone()];

        let mut mul = graph.node[mul_ix].clone();
        mul.name = format!("{stem}.dequant_mul");
        mul.output = vec![output];
        if scalar {
            mul.input = vec![rows_f, scale];
            graph.node[gather_ix] = lookup_q;
            graph.node.extend([cast, mul]);
        } else {
            let mut lookup_scale = gather.clone();
            lookup_scale.name = format!("{stem}.lookup_scale");
            lookup_scale.input = vec![scale, ids];
            lookup_scale.output = vec![rows_scale.clone()];
            mul.input = vec![rows_f, rows_scale];
            graph.node[gather_ix] = lookup_q;
            graph.node.extend([lookup_scale, cast, mul]);
        }
        dropped.extend([mul_ix, cast_ix]);
    }
    dropped.sort_unstable();
    for ix in dropped.into_iter().rev() {
        graph.node.remove(ix);
    }
    count
}

fn gather_axis(node: &NodeProto) -> i64 {
    node.attribute
        .iter()
        .find(|a| a.name == "axis")
        .map_or(0, |a| a.i)
}

/// Replaces the symbolic `batch` dimension with a fixed size in every shape
/// the file declares (inputs, outputs, intermediate value infos). tract
/// optimises fixed shapes much better than symbolic ones; `sequence` stays
/// symbolic under the file's own name so every declared shape agrees.
pub fn fix_batch_dimension(graph: &mut GraphProto, batch: usize) {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value;
    use tract_onnx::pb::type_proto;

    let infos = graph
        .input
        .iter_mut()
        .chain(graph.output.iter_mut())
        .chain(graph.value_info.iter_mut());
    for info in infos {
        let Some(type_proto::Value::TensorType(tensor)) =
            info.r#type.as_mut().and_then(|t| t.value.as_mut())
        else {
            continue;
        };
        for dim in tensor.shape.iter_mut().flat_map(|s| s.dim.iter_mut()) {
            if matches!(&dim.value, Some(Value::DimParam(name)) if name == "batch") {
                dim.value = Some(Value::DimValue(batch as i64));
            }
        }
    }
}

/// A `MatMul(x, Mul(Cast(q), scale))` of the graph: `q` a 2-D initialiser,
/// `scale` an initialiser per output column (`[1, n]`, `[n]`) or a scalar,
/// the scaled weights read by this product alone. Node indices.
struct ScaledProduct<'g> {
    matmul: usize,
    mul: usize,
    cast: usize,
    q: &'g TensorProto,
    scale: &'g TensorProto,
}

fn scaled_products<'g>(graph: &'g GraphProto, wiring: &Wiring<'g>) -> Vec<ScaledProduct<'g>> {
    let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let mut found = Vec::new();
    for (matmul_ix, matmul) in graph.node.iter().enumerate() {
        if matmul.op_type != "MatMul" || matmul.input.len() != 2 {
            continue;
        }
        let weights = matmul.input[1].as_str();
        let Some(&mul_ix) = wiring.producer.get(weights) else {
            continue;
        };
        let mul = &graph.node[mul_ix];
        if mul.op_type != "Mul"
            || mul.input.len() != 2
            || wiring.consumers.get(weights) != Some(&1)
            || outputs.contains(&weights)
        {
            continue;
        }
        let Some(&cast_ix) = wiring.producer.get(mul.input[0].as_str()) else {
            continue;
        };
        let cast = &graph.node[cast_ix];
        let (Some(&q), Some(&scale)) = (
            wiring
                .initializers
                .get(cast.input.first().map_or("", String::as_str)),
            wiring.initializers.get(mul.input[1].as_str()),
        ) else {
            continue;
        };
        if cast.op_type != "Cast" || q.dims.len() != 2 {
            continue;
        }
        let per_column = match scale.dims.as_slice() {
            [n] | [1, n] => *n == q.dims[1],
            _ => false,
        };
        if per_column || scale.dims.iter().all(|&d| d == 1) {
            found.push(ScaledProduct {
                matmul: matmul_ix,
                mul: mul_ix,
                cast: cast_ix,
                q,
                scale,
            });
        }
    }
    found
}

/// Rewrites every `MatMul(x, Mul(Cast(q), scale))` whose `q` is a 2-D
/// initialiser and whose `scale` is per output column (`[1, n]`, `[n]`) or
/// a scalar into `Mul(MatMul(x, Cast(q)), scale)`. Returns how many.
///
/// Why: tract folds constants while typing the graph, and the original form
/// folds twice, `Cast(q)` and then the product with `scale`, so every
/// weight matrix is held as float32 twice at the peak of loading (~42 MB
/// for MiniLM). After the rewrite only `Cast(q)` folds. The result is the
/// same up to float rounding (a column scale commutes with the product:
/// `x·(Q·diag(s)) = (x·Q)·diag(s)`), and the optimiser fuses the scale
/// into the matrix product's output, so inference costs the same.
pub fn scale_after_matmul(graph: &mut GraphProto) -> usize {
    let wiring = Wiring::of(graph);
    // (matmul, mul) for each rewritable product.
    let rewrites: Vec<(usize, usize)> = scaled_products(graph, &wiring)
        .iter()
        .map(|p| (p.matmul, p.mul))
        .collect();
    drop(wiring);

    let count = rewrites.len();
    let mut dropped = Vec::new();
    for (matmul_ix, mul_ix) in rewrites {
        let mul = graph.node[mul_ix].clone();
        let matmul = &mut graph.node[matmul_ix];
        let output = matmul.output[0].clone();
        let stem = if matmul.name.is_empty() {
            output.clone()
        } else {
            matmul.name.clone()
        };
        let unscaled = format!("{stem}.unscaled");
        matmul.input[1] = mul.input[0].clone();
        matmul.output[0] = unscaled.clone();
        let mut scale = mul;
        scale.name = format!("{stem}.scale");
        scale.input = vec![unscaled, scale.input[1].clone()];
        scale.output = vec![output];
        graph.node.push(scale);
        dropped.push(mul_ix);
    }
    dropped.sort_unstable();
    for ix in dropped.into_iter().rev() {
        graph.node.remove(ix);
    }
    count
}

/// Rewrites every `MatMul(x, Mul(Cast(q), scale))` whose `q` is a 2-D int8
/// initialiser and whose `scale` is per output column or a scalar into the
/// int8 product of [`super::int8`]: `CaxtonInt8MatMul(CaxtonQuantizeRows(x),
/// q, scale)`, one quantiser per distinct `x` (q, k and v read the same
/// one). Returns how many products were rewritten.
pub fn int8_products(graph: &mut GraphProto) -> usize {
    use tract_onnx::pb::tensor_proto::DataType;
    let wiring = Wiring::of(graph);
    // (matmul, mul, cast, q, scale) for each product of int8 weights whose
    // cast feeds nothing else (it is dropped).
    let rewrites: Vec<_> = scaled_products(graph, &wiring)
        .into_iter()
        .filter(|p| {
            p.q.data_type == DataType::Int8 as i32
                && wiring.consumers.get(graph.node[p.cast].output[0].as_str()) == Some(&1)
        })
        .map(|p| {
            (
                p.matmul,
                p.mul,
                p.cast,
                p.q.name.clone(),
                p.scale.name.clone(),
            )
        })
        .collect();
    drop(wiring);

    let count = rewrites.len();
    let mut quantized: HashMap<String, (String, String)> = HashMap::new();
    let mut added = Vec::new();
    let mut dropped = Vec::new();
    for (matmul_ix, mul_ix, cast_ix, q, scale) in rewrites {
        let matmul = &graph.node[matmul_ix];
        let x = matmul.input[0].clone();
        let (xq, params) = quantized
            .entry(x.clone())
            .or_insert_with(|| {
                let (xq, params) = (format!("{x}.q8"), format!("{x}.q8_params"));
                added.push(NodeProto {
                    op_type: super::int8::QUANTIZE_ROWS.into(),
                    name: format!("{x}.quantize"),
                    input: vec![x.clone()],
                    output: vec![xq.clone(), params.clone()],
                    ..NodeProto::default()
                });
                (xq, params)
            })
            .clone();
        added.push(NodeProto {
            op_type: super::int8::INT8_MATMUL.into(),
            name: if matmul.name.is_empty() {
                matmul.output[0].clone()
            } else {
                matmul.name.clone()
            },
            input: vec![xq, params, q, scale],
            output: matmul.output.clone(),
            ..NodeProto::default()
        });
        dropped.extend([matmul_ix, mul_ix, cast_ix]);
    }
    dropped.sort_unstable();
    dropped.dedup();
    for ix in dropped.into_iter().rev() {
        graph.node.remove(ix);
    }
    // tract wires nodes by name, so the new ones can go last.
    graph.node.extend(added);
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            name: output.into(),
            input: inputs.iter().map(|i| i.to_string()).collect(),
            output: vec![output.into()],
            ..NodeProto::default()
        }
    }

    fn initializer(name: &str, dims: &[i64]) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            ..TensorProto::default()
        }
    }

    /// `y = MatMul(x, Mul(Cast(q), s))` with `s` of shape `scale_dims`.
    fn product(scale_dims: &[i64]) -> GraphProto {
        GraphProto {
            initializer: vec![initializer("q", &[2, 3]), initializer("s", scale_dims)],
            node: vec![
                node("Cast", &["q"], "qf"),
                node("Mul", &["qf", "s"], "w"),
                node("MatMul", &["x", "w"], "y"),
            ],
            ..GraphProto::default()
        }
    }

    #[test]
    fn a_column_scale_moves_after_the_product() {
        let mut graph = product(&[1, 3]);
        assert_eq!(scale_after_matmul(&mut graph), 1);
        let ops: Vec<(&str, Vec<&str>, &str)> = graph
            .node
            .iter()
            .map(|n| {
                (
                    n.op_type.as_str(),
                    n.input.iter().map(String::as_str).collect(),
                    n.output[0].as_str(),
                )
            })
            .collect();
        assert_eq!(
            ops,
            [
                ("Cast", vec!["q"], "qf"),
                ("MatMul", vec!["x", "qf"], "y.unscaled"),
                ("Mul", vec!["y.unscaled", "s"], "y"),
            ]
        );
    }

    #[test]
    fn int8_products_share_one_quantiser_per_input() {
        use tract_onnx::pb::tensor_proto::DataType;
        let mut graph = product(&[1, 3]);
        graph.initializer[0].data_type = DataType::Int8 as i32;
        // A second product of the same `x`, as k and v share q's input.
        graph.initializer.push(TensorProto {
            data_type: DataType::Int8 as i32,
            ..initializer("q2", &[2, 3])
        });
        graph.node.extend([
            node("Cast", &["q2"], "qf2"),
            node("Mul", &["qf2", "s"], "w2"),
            node("MatMul", &["x", "w2"], "y2"),
        ]);
        assert_eq!(int8_products(&mut graph), 2);
        let ops: Vec<(&str, Vec<&str>, Vec<&str>)> = graph
            .node
            .iter()
            .map(|n| {
                (
                    n.op_type.as_str(),
                    n.input.iter().map(String::as_str).collect(),
                    n.output.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            ops,
            [
                (
                    super::super::int8::QUANTIZE_ROWS,
                    vec!["x"],
                    vec!["x.q8", "x.q8_params"]
                ),
                (
                    super::super::int8::INT8_MATMUL,
                    vec!["x.q8", "x.q8_params", "q", "s"],
                    vec!["y"]
                ),
                (
                    super::super::int8::INT8_MATMUL,
                    vec!["x.q8", "x.q8_params", "q2", "s"],
                    vec!["y2"]
                ),
            ]
        );
        // Float weights are not int8: left to the f32 path.
        let mut graph = product(&[1, 3]);
        graph.initializer[0].data_type = DataType::Float as i32;
        assert_eq!(int8_products(&mut graph), 0);
    }

    #[test]
    fn a_row_scale_or_a_shared_weight_is_left_alone() {
        // Per input row: it does not commute with the product.
        let mut graph = product(&[2, 1]);
        assert_eq!(scale_after_matmul(&mut graph), 0);
        // The scaled weights feed something else too.
        let mut graph = product(&[1, 3]);
        graph.node.push(node("Add", &["w", "w"], "other"));
        assert_eq!(scale_after_matmul(&mut graph), 0);
        assert_eq!(graph.node.len(), 4);
    }
}
