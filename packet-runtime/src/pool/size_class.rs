//! The size classes: the data capacities blocks come in.

/// Number of size classes.
pub const CLASS_COUNT: usize = 5;

/// Data capacity of each class, in bytes (frame header included, block header excluded). The largest class holds a
/// maximal compact frame (65,535 bytes) and a 64 KiB payload behind a wide header. Larger requests are served by a
/// plain allocation that is freed, not pooled, on release.
pub const CLASS_SIZES: [usize; CLASS_COUNT] = [128, 512, 2 * 1024, 8 * 1024, 64 * 1024 + 8];

/// The smallest class whose capacity is at least `len`, or `None` for an oversize request.
#[inline]
pub(crate) fn class_for(len: usize) -> Option<usize> {
    // A branch chain beats a `leading_zeros` computation here: small frames, the common case, exit first.
    if len <= CLASS_SIZES[0] {
        Some(0)
    } else if len <= CLASS_SIZES[1] {
        Some(1)
    } else if len <= CLASS_SIZES[2] {
        Some(2)
    } else if len <= CLASS_SIZES[3] {
        Some(3)
    } else if len <= CLASS_SIZES[4] {
        Some(4)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_for_picks_the_smallest_fitting_class() {
        assert_eq!(class_for(0), Some(0));
        assert_eq!(class_for(128), Some(0));
        assert_eq!(class_for(129), Some(1));
        assert_eq!(class_for(65_535), Some(4));
        assert_eq!(class_for(65_536 + 8), Some(4));
        assert_eq!(class_for(65_536 + 9), None);
        for (i, &size) in CLASS_SIZES.iter().enumerate() {
            assert_eq!(class_for(size), Some(i));
        }
    }
}
