//! The in-process vector index: every observation's embedding quantised to
//! int8 with a per-vector scale (384 bytes + 4), scanned in full with
//! filters applied during the scan, then the best candidates re-ranked with
//! their exact float32 vectors from the store.
//!
//! Why a flat scan: at 100k observations it is ~38 MB and a few ms on one
//! core, exact up to quantisation (re-ranking restores the order), costs
//! nothing to update on a write, and needs no training or graph upkeep.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Who may see an entry: mirrors the entity's scope and owner, interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Visibility {
    pub scope: u8,
    pub owner: u32,
}

/// What the scan keeps: an entry passes when `allow` says so.
pub trait EntryFilter {
    fn allow(&self, visibility: Visibility, entity_type: u32) -> bool;
}

#[derive(Default)]
pub struct VectorIndex {
    dims: usize,
    /// The sum of the ids held: with their count, a cheap fingerprint of
    /// which observations the index has, compared with the store's.
    id_sum: i128,
    ids: Vec<i64>,
    entity_ids: Vec<i64>,
    visibility: Vec<Visibility>,
    entity_types: Vec<u32>,
    scales: Vec<f32>,
    codes: Vec<i8>,
    position: HashMap<i64, usize>,
}

/// One quantised vector.
pub struct Quantized {
    scale: f32,
    codes: Vec<i8>,
}

pub fn quantize(vector: &[f32]) -> Quantized {
    let max = vector.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    let codes = vector
        .iter()
        .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8)
        .collect();
    Quantized { scale, codes }
}

/// Integer dot product, written so LLVM vectorises it (i16 multiply-adds).
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum()
}

impl VectorIndex {
    pub fn new(dims: usize) -> Self {
        Self {
            dims,
            ..Self::default()
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Dimensions of the vectors it holds.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// The observation ids held, in no particular order.
    pub fn ids(&self) -> &[i64] {
        &self.ids
    }

    /// How many observations it holds and the sum of their ids.
    pub fn fingerprint(&self) -> (i64, i128) {
        (self.ids.len() as i64, self.id_sum)
    }

    pub fn contains(&self, id: i64) -> bool {
        self.position.contains_key(&id)
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Room for `additional` more entries, exactly: a load that knows its
    /// count allocates once instead of doubling (a doubled 100k index holds
    /// ~40 MB it never uses).
    pub fn reserve_exact(&mut self, additional: usize) {
        self.ids.reserve_exact(additional);
        self.entity_ids.reserve_exact(additional);
        self.visibility.reserve_exact(additional);
        self.entity_types.reserve_exact(additional);
        self.scales.reserve_exact(additional);
        self.codes.reserve_exact(additional * self.dims);
        self.position.reserve(additional);
    }

    /// Hands back what the arrays hold beyond their entries.
    pub fn shrink_to_fit(&mut self) {
        self.ids.shrink_to_fit();
        self.entity_ids.shrink_to_fit();
        self.visibility.shrink_to_fit();
        self.entity_types.shrink_to_fit();
        self.scales.shrink_to_fit();
        self.codes.shrink_to_fit();
        self.position.shrink_to_fit();
    }

    /// Grows the arrays by an eighth when full, instead of doubling: the
    /// codes are nearly all of the index, and doubling them would leave up
    /// to half of a large index allocated and unused (large blocks are
    /// moved with `mremap`, so growing often copies nothing).
    fn grow_if_full(&mut self) {
        if self.ids.len() < self.ids.capacity() {
            return;
        }
        let more = (self.ids.len() / 8).max(1024);
        self.reserve_exact(more);
    }

    /// Bytes held by the index's arrays (what it costs in RAM).
    pub fn memory_bytes(&self) -> usize {
        self.codes.capacity()
            + self.ids.capacity() * 8
            + self.entity_ids.capacity() * 8
            + self.visibility.capacity() * std::mem::size_of::<Visibility>()
            + self.entity_types.capacity() * 4
            + self.scales.capacity() * 4
            + self.position.capacity() * 24
    }

    /// Adds or replaces observation `id`.
    pub fn insert(
        &mut self,
        id: i64,
        entity_id: i64,
        visibility: Visibility,
        entity_type: u32,
        vector: &[f32],
    ) {
        assert_eq!(vector.len(), self.dims, "embedding dimensions");
        let q = quantize(vector);
        if let Some(&at) = self.position.get(&id) {
            self.entity_ids[at] = entity_id;
            self.visibility[at] = visibility;
            self.entity_types[at] = entity_type;
            self.scales[at] = q.scale;
            self.codes[at * self.dims..(at + 1) * self.dims].copy_from_slice(&q.codes);
            return;
        }
        self.grow_if_full();
        self.position.insert(id, self.ids.len());
        self.id_sum += i128::from(id);
        self.ids.push(id);
        self.entity_ids.push(entity_id);
        self.visibility.push(visibility);
        self.entity_types.push(entity_type);
        self.scales.push(q.scale);
        self.codes.extend_from_slice(&q.codes);
    }

    /// Removes every observation of `entity_id` (swap-remove: O(1) each).
    pub fn remove_entity(&mut self, entity_id: i64) {
        let mut at = 0;
        while at < self.ids.len() {
            if self.entity_ids[at] == entity_id {
                self.swap_remove(at);
            } else {
                at += 1;
            }
        }
    }

    /// Removes every observation of the given entities in one pass.
    pub fn remove_entities(&mut self, entity_ids: &std::collections::HashSet<i64>) {
        let mut at = 0;
        while at < self.ids.len() {
            if entity_ids.contains(&self.entity_ids[at]) {
                self.swap_remove(at);
            } else {
                at += 1;
            }
        }
    }

    /// Removes observation `id` if present.
    pub fn remove(&mut self, id: i64) {
        if let Some(&at) = self.position.get(&id) {
            self.swap_remove(at);
        }
    }

    fn swap_remove(&mut self, at: usize) {
        let last = self.ids.len() - 1;
        self.id_sum -= i128::from(self.ids[at]);
        self.position.remove(&self.ids[at]);
        self.ids.swap_remove(at);
        self.entity_ids.swap_remove(at);
        self.visibility.swap_remove(at);
        self.entity_types.swap_remove(at);
        self.scales.swap_remove(at);
        if at != last {
            let (head, tail) = self.codes.split_at_mut(last * self.dims);
            head[at * self.dims..(at + 1) * self.dims].copy_from_slice(&tail[..self.dims]);
            self.position.insert(self.ids[at], at);
        }
        self.codes.truncate(last * self.dims);
    }

    /// The highest observation id held (0 when empty).
    pub fn max_id(&self) -> i64 {
        self.ids.iter().copied().max().unwrap_or(0)
    }

    /// Files every entry under its entity's visibility and type as
    /// `entities` gives them (entity id -> both), in one pass; entries of
    /// entities not in it are removed. Returns how many entries changed.
    pub fn refile(&mut self, entities: &HashMap<i64, (Visibility, u32)>) -> usize {
        let mut changed = 0;
        let mut at = 0;
        while at < self.ids.len() {
            match entities.get(&self.entity_ids[at]) {
                Some(&(visibility, entity_type)) => {
                    if self.visibility[at] != visibility || self.entity_types[at] != entity_type {
                        self.visibility[at] = visibility;
                        self.entity_types[at] = entity_type;
                        changed += 1;
                    }
                    at += 1;
                }
                None => {
                    self.swap_remove(at);
                    changed += 1;
                }
            }
        }
        changed
    }

    /// Changes the type recorded for an entity's observations.
    pub fn set_entity_type(&mut self, entity_id: i64, entity_type: u32) {
        for (at, &owner) in self.entity_ids.iter().enumerate() {
            if owner == entity_id {
                self.entity_types[at] = entity_type;
            }
        }
    }

    /// The `k` observation ids with the highest approximate cosine to
    /// `query` among entries the filter allows, best first.
    pub fn search(&self, query: &[f32], k: usize, filter: &dyn EntryFilter) -> Vec<(i64, f32)> {
        if k == 0 {
            return Vec::new();
        }
        let q = quantize(query);
        // Min-heap of the best k so far, on the integer score scaled.
        let mut best: BinaryHeap<Reverse<(OrderedScore, usize)>> = BinaryHeap::with_capacity(k + 1);
        for at in 0..self.ids.len() {
            if !filter.allow(self.visibility[at], self.entity_types[at]) {
                continue;
            }
            let codes = &self.codes[at * self.dims..(at + 1) * self.dims];
            let score = dot_i8(&q.codes, codes) as f32 * self.scales[at];
            if best.len() < k {
                best.push(Reverse((OrderedScore(score), at)));
            } else if score > best.peek().expect("non-empty").0.0.0 {
                best.pop();
                best.push(Reverse((OrderedScore(score), at)));
            }
        }
        let mut hits: Vec<(i64, f32)> = best
            .into_iter()
            .map(|Reverse((score, at))| (self.ids[at], score.0 * q.scale))
            .collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1));
        hits
    }
}

/// The index's arrays, in entry order: what the index file holds.
pub struct Parts {
    pub dims: usize,
    pub ids: Vec<i64>,
    pub entity_ids: Vec<i64>,
    pub visibility: Vec<Visibility>,
    pub entity_types: Vec<u32>,
    pub scales: Vec<f32>,
    pub codes: Vec<i8>,
}

impl VectorIndex {
    /// The arrays, borrowed, for writing the index file.
    pub fn parts(&self) -> PartsRef<'_> {
        PartsRef {
            dims: self.dims,
            ids: &self.ids,
            entity_ids: &self.entity_ids,
            visibility: &self.visibility,
            entity_types: &self.entity_types,
            scales: &self.scales,
            codes: &self.codes,
        }
    }

    /// An index of the arrays read back from the index file. `None` when
    /// their lengths disagree or an id repeats.
    pub fn from_parts(parts: Parts) -> Option<Self> {
        let n = parts.ids.len();
        let consistent = parts.entity_ids.len() == n
            && parts.visibility.len() == n
            && parts.entity_types.len() == n
            && parts.scales.len() == n
            && parts.codes.len() == n * parts.dims;
        if !consistent {
            return None;
        }
        let mut position = HashMap::with_capacity(n);
        let mut id_sum = 0i128;
        for (at, &id) in parts.ids.iter().enumerate() {
            if position.insert(id, at).is_some() {
                return None;
            }
            id_sum += i128::from(id);
        }
        Some(Self {
            dims: parts.dims,
            id_sum,
            ids: parts.ids,
            entity_ids: parts.entity_ids,
            visibility: parts.visibility,
            entity_types: parts.entity_types,
            scales: parts.scales,
            codes: parts.codes,
            position,
        })
    }
}

/// [`Parts`], borrowed.
pub struct PartsRef<'a> {
    pub dims: usize,
    pub ids: &'a [i64],
    pub entity_ids: &'a [i64],
    pub visibility: &'a [Visibility],
    pub entity_types: &'a [u32],
    pub scales: &'a [f32],
    pub codes: &'a [i8],
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct OrderedScore(f32);

impl Eq for OrderedScore {}

impl PartialOrd for OrderedScore {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedScore {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Everything;
    impl EntryFilter for Everything {
        fn allow(&self, _: Visibility, _: u32) -> bool {
            true
        }
    }

    struct OnlyScope(u8);
    impl EntryFilter for OnlyScope {
        fn allow(&self, v: Visibility, _: u32) -> bool {
            v.scope == self.0
        }
    }

    /// Deterministic pseudo-random unit vectors (xorshift), no extra crate.
    fn vectors(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut state = seed;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f32 / (1u64 << 53) as f32 - 0.5
        };
        (0..n)
            .map(|_| {
                let v: Vec<f32> = (0..dims).map(|_| next()).collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.into_iter().map(|x| x / norm).collect()
            })
            .collect()
    }

    fn exact_top(vectors: &[Vec<f32>], query: &[f32], k: usize) -> Vec<usize> {
        let mut scored: Vec<(usize, f32)> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (i, v.iter().zip(query).map(|(a, b)| a * b).sum()))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.into_iter().take(k).map(|(i, _)| i).collect()
    }

    #[test]
    fn quantised_candidates_contain_the_exact_top_ten() {
        // Uniform random vectors are the hard case: similarities bunch up.
        let data = vectors(5000, 384, 7);
        let mut index = VectorIndex::new(384);
        for (i, v) in data.iter().enumerate() {
            index.insert(i as i64, i as i64, Visibility { scope: 0, owner: 0 }, 0, v);
        }
        let queries = vectors(50, 384, 99);
        let mut found = 0;
        for query in &queries {
            // 40 candidates, as search re-ranks 4x the limit.
            let candidates: Vec<i64> = index
                .search(query, 40, &Everything)
                .iter()
                .map(|h| h.0)
                .collect();
            found += exact_top(&data, query, 10)
                .into_iter()
                .filter(|i| candidates.contains(&(*i as i64)))
                .count();
        }
        let recall = found as f64 / (queries.len() * 10) as f64;
        assert!(recall >= 0.98, "recall@10 of the candidate set: {recall}");
    }

    #[test]
    fn filters_apply_during_the_scan_and_removal_keeps_positions_right() {
        let data = vectors(100, 8, 3);
        let mut index = VectorIndex::new(8);
        for (i, v) in data.iter().enumerate() {
            let scope = (i % 2) as u8;
            index.insert(
                i as i64,
                i as i64 / 10,
                Visibility { scope, owner: 0 },
                0,
                v,
            );
        }
        let hits = index.search(&data[3], 5, &OnlyScope(1));
        assert_eq!(hits[0].0, 3, "a vector is its own nearest neighbour");
        assert!(hits.iter().all(|(id, _)| id % 2 == 1));

        index.remove_entity(0); // ids 0..10
        index.remove(55);
        assert_eq!(index.len(), 89);
        let hits = index.search(&data[3], 100, &Everything);
        assert!(hits.iter().all(|(id, _)| *id >= 10 && *id != 55));
        let top = index.search(&data[77], 1, &Everything);
        assert_eq!(top[0].0, 77, "moved entries still answer for their own id");
    }
}
