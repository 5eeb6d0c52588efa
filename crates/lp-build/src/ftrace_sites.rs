//! The running kernel's ftrace call sites (`__mcount_loc`, between `__start_mcount_loc` and
//! `__stop_mcount_loc` in vmlinux) by kallsyms range.
//!
//! Livepatch resolves a function to its kallsyms address and asks ftrace for the call site in
//! `[address, next symbol)`. When that range holds more than one site (the code of an overridden
//! `__weak` function stays in vmlinux without a symbol right after another function; seen on
//! 6.1), the kernel may pick the wrong, disabled one: the patch then "applies" and changes
//! nothing. Such targets are refused.

use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

/// Call sites and symbol addresses of a vmlinux.
pub struct FtraceSites {
    sites: Vec<u64>,
    /// (address, name) of every defined symbol kallsyms would list, by address.
    symbols: Vec<(u64, String)>,
}

impl FtraceSites {
    /// Reads them from vmlinux; `None` when it has no `__mcount_loc` table.
    pub fn from_vmlinux(bytes: &[u8]) -> Option<FtraceSites> {
        let file = object::File::parse(bytes).ok()?;
        let addr_of = |name: &str| {
            file.symbols()
                .find(|s| s.name() == Ok(name))
                .map(|s| s.address())
        };
        let (start, stop) = (
            addr_of("__start_mcount_loc")?,
            addr_of("__stop_mcount_loc")?,
        );
        let len = stop.checked_sub(start)?;
        let data = file
            .sections()
            .find_map(|s| s.data_range(start, len).ok().flatten())?;
        let mut sites: Vec<u64> = data
            .chunks_exact(8)
            .filter_map(|c| c.try_into().ok().map(u64::from_le_bytes))
            .collect();
        sites.sort_unstable();
        let mut symbols: Vec<(u64, String)> = file
            .symbols()
            .filter(|s| {
                s.is_definition()
                    && !matches!(s.kind(), SymbolKind::File | SymbolKind::Section)
                    && s.address() != 0
            })
            .filter_map(|s| Some((s.address(), s.name().ok()?.to_string())))
            .collect();
        symbols.sort();
        Some(FtraceSites { sites, symbols })
    }

    /// The kallsyms range of `name` (at livepatch position `pos`: 0 unique, else 1-based among
    /// same-named symbols by address) and how many call sites it holds.
    pub fn sites_of(&self, name: &str, pos: u64) -> Option<(u64, u64, usize)> {
        let same: Vec<u64> = self
            .symbols
            .iter()
            .filter(|(_, n)| n == name)
            .map(|(a, _)| *a)
            .collect();
        let start = match pos {
            0 => *same.first()?,
            k => *same.get(usize::try_from(k).ok()?.checked_sub(1)?)?,
        };
        let end = self
            .symbols
            .iter()
            .map(|(a, _)| *a)
            .find(|&a| a > start)
            .unwrap_or(u64::MAX);
        let count = self
            .sites
            .iter()
            .filter(|&&s| s >= start && s < end)
            .count();
        Some((start, end, count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sites_per_kallsyms_range() {
        let f = FtraceSites {
            sites: vec![0x1004, 0x1104, 0x1184, 0x2004],
            symbols: vec![
                (0x1000, "a".into()),
                (0x1100, "b".into()),
                (0x2000, "c".into()),
                (0x3000, "c".into()),
            ],
        };
        assert_eq!(f.sites_of("a", 0), Some((0x1000, 0x1100, 1)));
        // b is followed by symbol-less code with its own site.
        assert_eq!(f.sites_of("b", 0), Some((0x1100, 0x2000, 2)));
        assert_eq!(f.sites_of("c", 1), Some((0x2000, 0x3000, 1)));
        assert_eq!(f.sites_of("c", 2), Some((0x3000, u64::MAX, 0)));
        assert_eq!(f.sites_of("missing", 0), None);
    }
}
