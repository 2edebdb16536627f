//! Int8 matrix products for the encoder: activations quantised per token
//! on the fly, multiplied with the model's int8 weights as stored.
//!
//! The model file keeps its weights int8 and multiplies in f32 (`MatMul(x,
//! Mul(Cast(q), scale))`), so tract holds every weight matrix as f32: 42 MB
//! of the host's RSS, streamed from memory on every inference. Here each
//! product is instead `x ≈ s·(xq − z)` per row (asymmetric, 8 bits, one
//! scale `s` and zero point `z` per token) times `q`, accumulated in i32 by
//! tract's int8 kernels (VNNI where the CPU has it), then rescaled:
//! `x·(q·diag(w)) ≈ s·(xq·q − z·Σₖq)·diag(w)`.
//!
//! Two ONNX ops of our own, put in by [`super::graph::int8_products`]:
//! `CaxtonQuantizeRows(x) -> (xq, params)` and `CaxtonInt8MatMul(xq,
//! params, q, w) -> y`. Quantising and rescaling are one pass each, in
//! plain loops: written as ONNX element-wise ops they were a dozen passes
//! per product and cost more than the int8 kernels saved.

use std::sync::Arc;

use tract_hir::internal::*;
use tract_onnx::Onnx;
use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;

/// The op type names the graph rewrite uses.
pub const QUANTIZE_ROWS: &str = "CaxtonQuantizeRows";
pub const INT8_MATMUL: &str = "CaxtonInt8MatMul";

/// Makes `onnx` read the two ops.
pub fn register(onnx: &mut Onnx) {
    onnx.op_register
        .insert(QUANTIZE_ROWS, |_: &ParsingContext, _: &NodeProto| {
            Ok((expand(QuantizeRowsExpansion), vec![]))
        });
    onnx.op_register
        .insert(INT8_MATMUL, |_: &ParsingContext, _: &NodeProto| {
            Ok((expand(Int8MatMulExpansion), vec![]))
        });
}

/// Rounds to the nearest integer, ties to even, for |v| < 2^22: adding
/// and taking away 1.5·2^23 leaves no fraction bits. `f32::round` is a
/// libm call per element on baseline x86-64; this vectorises.
#[inline(always)]
fn round_small(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

/// [`round_small`] as an integer: after the addition, the low mantissa
/// bits are the rounded value, so integer arithmetic reads it out (a
/// saturating `as i32` would be a scalar conversion with NaN checks).
#[inline(always)]
fn round_to_int(v: f32) -> i32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32
}

/// Whether this CPU multiplies int8 faster than f32: x86 with VNNI (the
/// AVX-512 or the AVX form). Measured on a 2-core AVX-512 VNNI VM, int8
/// embeds a short sentence 1.3x and a batch 1.3x faster than f32; with
/// tract's AVX2 int8 kernel instead it is 2x slower. ARM's dot-product
/// kernels are not measured yet, so `auto` keeps f32 there.
pub fn cpu_has_fast_int8() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512vnni") || std::is_x86_feature_detected!("avxvnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Quantises one row: returns (scale, zero point) and writes `q`, with
/// `x ≈ scale·(q − zero)`. The range always holds 0, so zero is exact.
// `max`/`min` below rather than `clamp`: a NaN must land in range.
#[allow(clippy::manual_clamp)]
fn quantize_row(x: &[f32], q: &mut [i8]) -> (f32, f32) {
    // Sixteen lanes of running minima and maxima, so the scan vectorises.
    let mut lo = [0f32; 16];
    let mut hi = [0f32; 16];
    let chunks = x.chunks_exact(16);
    let tail = chunks.remainder();
    for chunk in chunks {
        for i in 0..16 {
            lo[i] = if chunk[i] < lo[i] { chunk[i] } else { lo[i] };
            hi[i] = if chunk[i] > hi[i] { chunk[i] } else { hi[i] };
        }
    }
    let min = tail.iter().chain(&lo).fold(0f32, |m, &v| m.min(v));
    let max = tail.iter().chain(&hi).fold(0f32, |m, &v| m.max(v));
    let range = max - min;
    let scale = if range > 0.0 && range.is_finite() {
        range / 255.0
    } else {
        1.0
    };
    let inverse = 1.0 / scale;
    // min maps to -128; the zero point is where 0.0 lands.
    let zero = round_small((-128.0 - min * inverse).clamp(-128.0, 127.0));
    // A NaN lands on -128 instead of passing.
    for (q, &v) in q.iter_mut().zip(x) {
        *q = round_to_int((v * inverse + zero).max(-128.0).min(127.0)) as i8;
    }
    (scale, zero)
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct QuantizeRowsExpansion;

impl Expansion for QuantizeRowsExpansion {
    fn name(&self) -> StaticName {
        QUANTIZE_ROWS.into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(2)
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 2)?;
        s.equals(&inputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].datum_type, i8::datum_type())?;
        s.equals(&outputs[1].datum_type, f32::datum_type())?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        s.equals(&inputs[0].rank, &outputs[1].rank)?;
        s.given(&inputs[0].shape, move |s, shape| {
            let mut params = shape.clone();
            if let Some(last) = params.last_mut() {
                *last = 2.into();
            }
            s.equals(&outputs[1].shape, params)
        })?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, QuantizeRows, inputs)
    }
}

/// `x` (f32, `[.., k]`) to `xq` (i8, same shape) and `params` (f32,
/// `[.., 2]`: each row's scale and zero point).
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct QuantizeRows;

impl Op for QuantizeRows {
    fn name(&self) -> StaticName {
        QUANTIZE_ROWS.into()
    }
    op_as_typed_op!();
}

impl EvalOp for QuantizeRows {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let shape = x.shape().to_vec();
        let k = *shape.last().context("QuantizeRows needs rank >= 1")?;
        let view = x.to_plain_array_view::<f32>()?;
        let x = view
            .as_slice()
            .context("QuantizeRows input is not contiguous")?;
        let rows = x.len() / k.max(1);
        let mut q = vec![0i8; x.len()];
        let mut params = Vec::with_capacity(rows * 2);
        for (x, q) in x.chunks_exact(k).zip(q.chunks_exact_mut(k)) {
            let (scale, zero) = quantize_row(x, q);
            params.extend([scale, zero]);
        }
        let mut params_shape = shape.clone();
        *params_shape.last_mut().expect("rank >= 1") = 2;
        let q = tract_ndarray::ArrayD::from_shape_vec(shape, q)?.into_tensor();
        let params = tract_ndarray::ArrayD::from_shape_vec(params_shape, params)?.into_tensor();
        Ok(tvec![q.into_tvalue(), params.into_tvalue()])
    }
}

impl TypedOp for QuantizeRows {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = &inputs[0].shape;
        ensure!(shape.rank() >= 1, "QuantizeRows needs rank >= 1");
        let mut params: TVec<TDim> = shape.iter().cloned().collect();
        *params.last_mut().expect("rank >= 1") = 2.into();
        Ok(tvec![
            i8::datum_type().fact(shape.clone()),
            f32::datum_type().fact(params)
        ])
    }
    as_op!();
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct Int8MatMulExpansion;

impl Expansion for Int8MatMulExpansion {
    fn name(&self) -> StaticName {
        INT8_MATMUL.into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 4)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, i8::datum_type())?;
        s.equals(&inputs[2].datum_type, i8::datum_type())?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&inputs[2].rank, 2)?;
        s.equals(&inputs[0].rank, &outputs[0].rank)?;
        s.given_2(&inputs[0].shape, &inputs[2].shape, move |s, x, w| {
            let mut out = x.clone();
            if let (Some(last), Some(n)) = (out.last_mut(), w.get(1)) {
                *last = n.clone();
            }
            s.equals(&outputs[0].shape, out)
        })?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let [xq, params, q, w] = inputs else {
            bail!("{INT8_MATMUL} takes xq, params, q, w");
        };
        let weights = model
            .outlet_fact(*q)?
            .konst
            .clone()
            .with_context(|| format!("{prefix}: the int8 weights must be a constant"))?;
        let w = model
            .outlet_fact(*w)?
            .konst
            .clone()
            .with_context(|| format!("{prefix}: the weight scales must be a constant"))?;
        let &[k, n] = weights.shape() else {
            bail!("{prefix}: the int8 weights must be a matrix");
        };
        let weights_view = weights.to_plain_array_view::<i8>()?;
        let weights_slice = weights_view
            .as_slice()
            .context("int8 weights are not contiguous")?;
        let mut column_sums = vec![0f32; n];
        for row in weights_slice.chunks_exact(n) {
            for (sum, &v) in column_sums.iter_mut().zip(row) {
                *sum += f32::from(v);
            }
        }
        let w = w.cast_to::<f32>()?;
        let w_view = w.to_plain_array_view::<f32>()?;
        let scales: Vec<f32> = match w_view.len() {
            1 => vec![w_view.iter().next().copied().unwrap_or(1.0); n],
            len if len == n => w_view.iter().copied().collect(),
            len => bail!("{prefix}: {len} weight scales for {n} columns"),
        };

        let rank = model.outlet_fact(*xq)?.rank();
        ensure!(rank >= 2, "{prefix}: activations need rank >= 2");
        let batch: String = ('a'..='z')
            .filter(|c| !"kmn".contains(*c))
            .take(rank - 2)
            .collect();
        let axes: AxesMapping = format!("{batch}mk,kn->{batch}mn").parse()?;
        ensure!(
            model.outlet_fact(*xq)?.shape[rank - 1] == k.to_dim(),
            "{prefix}: activations and weights disagree on k"
        );
        let product = model.wire_node(
            format!("{prefix}.product"),
            tract_core::ops::einsum::EinSum::new(axes, i32::datum_type()),
            &[*xq, *q],
        )?;
        model.wire_node(
            format!("{prefix}.rescale"),
            DequantizeRows {
                column_sums: Arc::new(column_sums),
                scales: Arc::new(scales),
            },
            &[product[0], *params],
        )
    }
}

/// `acc` (i32, `[.., n]`) and `params` (f32, `[.., 2]`) to
/// `y = s·(acc − z·column_sums)·scales`, row by row.
#[derive(Debug, Clone)]
struct DequantizeRows {
    column_sums: Arc<Vec<f32>>,
    scales: Arc<Vec<f32>>,
}

impl PartialEq for DequantizeRows {
    fn eq(&self, other: &Self) -> bool {
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        bits(&self.column_sums) == bits(&other.column_sums)
            && bits(&self.scales) == bits(&other.scales)
    }
}
impl Eq for DequantizeRows {}

impl Op for DequantizeRows {
    fn name(&self) -> StaticName {
        "CaxtonDequantizeRows".into()
    }
    op_as_typed_op!();
}

impl EvalOp for DequantizeRows {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (acc, params) = args_2!(inputs);
        let shape = acc.shape().to_vec();
        let n = self.column_sums.len();
        ensure!(
            shape.last() == Some(&n),
            "DequantizeRows: {shape:?} for {n} columns"
        );
        let acc_view = acc.to_plain_array_view::<i32>()?;
        let acc = acc_view.as_slice().context("product is not contiguous")?;
        let params_view = params.to_plain_array_view::<f32>()?;
        let params = params_view
            .as_slice()
            .context("params are not contiguous")?;
        let mut y = vec![0f32; acc.len()];
        for ((y, acc), p) in y
            .chunks_exact_mut(n)
            .zip(acc.chunks_exact(n))
            .zip(params.chunks_exact(2))
        {
            let (scale, zero) = (p[0], p[1]);
            for (((y, &acc), &sum), &w) in y
                .iter_mut()
                .zip(acc)
                .zip(self.column_sums.iter())
                .zip(self.scales.iter())
            {
                *y = scale * (acc as f32 - zero * sum) * w;
            }
        }
        Ok(tvec![
            tract_ndarray::ArrayD::from_shape_vec(shape, y)?
                .into_tensor()
                .into_tvalue()
        ])
    }
}

impl TypedOp for DequantizeRows {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec![f32::datum_type().fact(inputs[0].shape.clone())])
    }
    as_op!();
}

#[cfg(test)]
mod tests {
    use super::quantize_row;

    #[test]
    fn a_row_round_trips_within_half_a_step() {
        let x = [-1.5f32, -0.25, 0.0, 0.3, 2.0, 1.0e-3];
        let mut q = [0i8; 6];
        let (scale, zero) = quantize_row(&x, &mut q);
        assert!((scale - 3.5 / 255.0).abs() < 1e-6);
        for (&v, &q) in x.iter().zip(&q) {
            let back = scale * (f32::from(q) - zero);
            assert!(
                (back - v).abs() <= scale / 2.0 + 1e-6,
                "{v} came back as {back}"
            );
        }
        // Zero is exact, the extremes use the whole range.
        assert_eq!(scale * (f32::from(q[2]) - zero), 0.0);
        assert_eq!((q[0], q[4]), (-128, 127));
    }

    #[test]
    fn a_row_of_zeros_or_of_one_sign_is_well_defined() {
        let mut q = [0i8; 3];
        let (scale, zero) = quantize_row(&[0.0; 3], &mut q);
        assert!(scale > 0.0 && scale.is_finite());
        assert!(q.iter().all(|&q| scale * (f32::from(q) - zero) == 0.0));
        let (scale, zero) = quantize_row(&[1.0, 2.0, 3.0], &mut q);
        assert!((scale * (f32::from(q[2]) - zero) - 3.0).abs() <= scale / 2.0);
    }
}
