//! Bounds on the log lines one kind of event can write.

/// Most lines a [`Throttle`] lets through per second.
pub const THROTTLE_PER_SEC: u32 = 10;

/// Bounds the log lines one kind of event writes (a refused request, a
/// dropped frame), so that a flood from the segment cannot flood the log:
/// [`THROTTLE_PER_SEC`] lines a second, then silence until the next
/// second, whose first line says how many were left out.
#[derive(Debug)]
pub struct Throttle {
    window: std::time::Instant,
    shown: u32,
    skipped: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new()
    }
}

impl Throttle {
    /// A throttle whose first second starts now.
    pub fn new() -> Self {
        Self {
            window: std::time::Instant::now(),
            shown: 0,
            skipped: 0,
        }
    }

    /// Whether to write this line: `Some(n)` with the number of lines left
    /// out since the last one written, `None` to leave this one out.
    pub fn allow(&mut self) -> Option<u64> {
        self.allow_at(std::time::Instant::now())
    }

    fn allow_at(&mut self, now: std::time::Instant) -> Option<u64> {
        if now.duration_since(self.window) >= std::time::Duration::from_secs(1) {
            self.window = now;
            self.shown = 0;
        }
        if self.shown >= THROTTLE_PER_SEC {
            self.skipped += 1;
            return None;
        }
        self.shown += 1;
        Some(std::mem::take(&mut self.skipped))
    }
}

/// `" (N more not logged)"` for a [`Throttle::allow`] count, or nothing.
pub fn skipped_note(skipped: u64) -> String {
    if skipped == 0 {
        String::new()
    } else {
        format!(" ({skipped} more not logged)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_bounds_the_lines_per_second_and_counts_the_rest() {
        let mut t = Throttle::new();
        let start = t.window;
        let shown = (0..1000).filter_map(|_| t.allow_at(start)).count();
        assert_eq!(shown, THROTTLE_PER_SEC as usize);
        let next = start + std::time::Duration::from_secs(1);
        assert_eq!(t.allow_at(next), Some(1000 - u64::from(THROTTLE_PER_SEC)));
        assert_eq!(t.allow_at(next), Some(0));
        assert_eq!(skipped_note(0), "");
        assert_eq!(skipped_note(3), " (3 more not logged)");
    }
}
