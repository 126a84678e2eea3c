//! Two SHA-256 compressions at once.
//!
//! Pseudonymisation compresses one 64-byte block per NHS number twice over (the inner and outer
//! HMAC hashes), and every block is independent of the next number's. One compression is a chain
//! of 32 `sha256rnds2` instructions each waiting on the one before, which leaves the processor's
//! SHA unit idle between them; [`compress_pair`] runs two independent compressions interleaved
//! instruction by instruction, so the second fills those gaps. On x86-64 processors with the SHA
//! extensions (detected at run time) it uses them; elsewhere it makes two calls to the `sha2`
//! crate's compression function. Either way the result is exactly FIPS 180-4's compression
//! function (a test compares both paths with `sha2` on varied blocks).

/// Compresses `block_a` into `a` and `block_b` into `b`.
pub fn compress_pair(a: &mut [u32; 8], block_a: &[u8; 64], b: &mut [u32; 8], block_b: &[u8; 64]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("sse4.1")
        && std::arch::is_x86_feature_detected!("ssse3")
    {
        // SAFETY: the processor has the features `x86::compress_pair` is compiled for.
        unsafe { x86::compress_pair(a, block_a, b, block_b) };
        return;
    }
    compress_pair_portable(a, block_a, b, block_b);
}

/// The same, one block after the other, with the `sha2` crate.
fn compress_pair_portable(a: &mut [u32; 8], block_a: &[u8; 64], b: &mut [u32; 8], block_b: &[u8; 64]) {
    sha2::compress256(a, &[(*block_a).into()]);
    sha2::compress256(b, &[(*block_b).into()]);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// SHA-256 round constants (FIPS 180-4 §4.2.2).
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
        0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
        0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
        0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    /// One lane: the state in the (ABEF, CDGH) register layout `sha256rnds2` works on, the
    /// state it started from, and the last four quarters of the message schedule.
    struct Lane {
        abef: __m128i,
        cdgh: __m128i,
        start: (__m128i, __m128i),
        w: [__m128i; 4],
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn load(state: &[u32; 8], block: &[u8; 64]) -> Lane {
        let byte_swap = _mm_set_epi64x(0x0C0D_0E0F_0809_0A0Bu64 as i64, 0x0405_0607_0001_0203u64 as i64);
        // SAFETY: unaligned 16-byte loads within the 32-byte state and the 64-byte block.
        let (dcba, efgh, words) = unsafe {
            let s = state.as_ptr() as *const __m128i;
            let m = block.as_ptr() as *const __m128i;
            let words = [0, 1, 2, 3].map(|i| _mm_shuffle_epi8(_mm_loadu_si128(m.add(i)), byte_swap));
            (_mm_loadu_si128(s), _mm_loadu_si128(s.add(1)), words)
        };
        let cdab = _mm_shuffle_epi32(dcba, 0xB1);
        let efgh = _mm_shuffle_epi32(efgh, 0x1B);
        let abef = _mm_alignr_epi8(cdab, efgh, 8);
        let cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
        Lane { abef, cdgh, start: (abef, cdgh), w: words }
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn store(lane: &Lane, state: &mut [u32; 8]) {
        let abef = _mm_add_epi32(lane.abef, lane.start.0);
        let cdgh = _mm_add_epi32(lane.cdgh, lane.start.1);
        let feba = _mm_shuffle_epi32(abef, 0x1B);
        let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
        let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
        let hgef = _mm_alignr_epi8(dchg, feba, 8);
        // SAFETY: unaligned 16-byte stores within the 32-byte state.
        unsafe {
            let s = state.as_mut_ptr() as *mut __m128i;
            _mm_storeu_si128(s, dcba);
            _mm_storeu_si128(s.add(1), hgef);
        }
    }

    /// Message words `4i..4i+4` plus their round constants; from `i = 4` on, computed from the
    /// previous sixteen words (and kept in place of the oldest four).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    #[inline]
    fn schedule(lane: &mut Lane, i: usize, k: __m128i) -> __m128i {
        if i >= 4 {
            let [w0, w1, w2, w3] = [0, 1, 2, 3].map(|j| lane.w[(i + j) % 4]);
            let t = _mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8(w3, w2, 4));
            lane.w[i % 4] = _mm_sha256msg2_epu32(t, w3);
        }
        _mm_add_epi32(lane.w[i % 4], k)
    }

    /// See [`super::compress_pair`]: the two lanes advance four rounds at a time, alternately.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub fn compress_pair(a: &mut [u32; 8], block_a: &[u8; 64], b: &mut [u32; 8], block_b: &[u8; 64]) {
        let (mut x, mut y) = (load(a, block_a), load(b, block_b));
        for i in 0..16 {
            // SAFETY: an unaligned 16-byte load of constants `4i..4i+4` of 64.
            let k = unsafe { _mm_loadu_si128(K.as_ptr().add(4 * i) as *const __m128i) };
            let (tx, ty) = (schedule(&mut x, i, k), schedule(&mut y, i, k));
            x.cdgh = _mm_sha256rnds2_epu32(x.cdgh, x.abef, tx);
            y.cdgh = _mm_sha256rnds2_epu32(y.cdgh, y.abef, ty);
            x.abef = _mm_sha256rnds2_epu32(x.abef, x.cdgh, _mm_shuffle_epi32(tx, 0x0E));
            y.abef = _mm_sha256rnds2_epu32(y.abef, y.cdgh, _mm_shuffle_epi32(ty, 0x0E));
        }
        store(&x, a);
        store(&y, b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_paths_are_the_sha256_compression_function() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200 {
            let mut blocks = [[0u8; 64]; 2];
            blocks.iter_mut().flatten().for_each(|b| *b = next() as u8);
            let mut states = [[0u32; 8]; 2];
            states.iter_mut().flatten().for_each(|w| *w = next() as u32);
            let mut want = states;
            for (state, block) in want.iter_mut().zip(&blocks) {
                sha2::compress256(state, &[(*block).into()]);
            }
            let [mut a, mut b] = states;
            compress_pair(&mut a, &blocks[0], &mut b, &blocks[1]);
            assert_eq!([a, b], want);
            let [mut a, mut b] = states;
            compress_pair_portable(&mut a, &blocks[0], &mut b, &blocks[1]);
            assert_eq!([a, b], want);
        }
    }
}
