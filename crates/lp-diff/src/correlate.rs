//! Pairs the symbols and sections of the ORIG and PATCHED objects.
//!
//! Order: exact names (unique on both sides), then functions whose numeric suffix changed
//! (`foo.isra.3` / `foo.isra.5`), then static locals through the functions that use them.
//! Special statics are never paired: a patch gets fresh copies of them.

use crate::names;
use crate::view::{Target, View};
use crate::HashMap;

/// The pairing.
#[derive(Debug, Clone)]
pub struct Correlation {
    /// Patched symbol -> orig symbol.
    pub p2o: Vec<Option<usize>>,
    /// Orig symbol -> patched symbol.
    pub o2p: Vec<Option<usize>>,
    /// Patched section -> orig section.
    pub sec_p2o: Vec<Option<usize>>,
}

fn is_static_local(v: &View, i: usize) -> bool {
    let s = &v.obj.symbols[i];
    s.is_local() && s.is_object() && names::has_numeric_suffix(v.name(i))
}

fn correlatable(v: &View, i: usize) -> bool {
    let s = &v.obj.symbols[i];
    // Compiler-local labels (`.LC12`, `.L__unnamed_3`) are numbered per object: never an
    // identity.
    if i == 0 || s.is_section() || v.name(i).is_empty() || v.name(i).starts_with(".L") {
        return false;
    }
    if s.is_local() && s.is_object() {
        if names::is_special_static_name(v.name(i)) {
            return false;
        }
        if let Some(sec) = s.section_index() {
            if names::is_flag_section(&v.sec_name(sec)) {
                return false;
            }
        }
    }
    true
}

/// Correlates `o` (orig) and `p` (patched): exact names, renamed clones, static locals, then
/// sections.
pub fn correlate(o: &View, p: &View) -> Correlation {
    let mut c = Correlation {
        p2o: vec![None; p.obj.symbols.len()],
        o2p: vec![None; o.obj.symbols.len()],
        sec_p2o: vec![None; p.obj.sections.len()],
    };
    if !c.p2o.is_empty() && !c.o2p.is_empty() {
        c.pair(0, 0);
    }
    exact_names(o, p, &mut c);
    renamed_clones(o, p, &mut c);
    static_locals(o, p, &mut c);
    sections(o, p, &mut c);
    c
}

impl Correlation {
    fn pair(&mut self, pi: usize, oi: usize) {
        self.p2o[pi] = Some(oi);
        self.o2p[oi] = Some(pi);
    }
}

/// 1. Exact names, unique among the correlatable symbols on both sides, same type. Static
///    locals are left to [`static_locals`]: their numeric suffix is not an identity.
fn exact_names(o: &View, p: &View, c: &mut Correlation) {
    for (name, pcands) in &p.by_name {
        let pc: Vec<usize> = pcands
            .iter()
            .copied()
            .filter(|&i| correlatable(p, i) && !is_static_local(p, i))
            .collect();
        let Some(ocands) = o.by_name.get(name) else {
            continue;
        };
        let oc: Vec<usize> = ocands
            .iter()
            .copied()
            .filter(|&i| correlatable(o, i) && !is_static_local(o, i))
            .collect();
        if pc.len() == oc.len() && !pc.is_empty() {
            // Same-named symbols pair in order (several STT_FILE symbols, duplicate locals).
            for (&pi, &oi) in pc.iter().zip(&oc) {
                if p.obj.symbols[pi].st_type() == o.obj.symbols[oi].st_type() {
                    c.pair(pi, oi);
                }
            }
        }
    }
}

/// 2. Renamed clones: unpaired functions with the same canonical name, unique both sides.
fn renamed_clones(o: &View, p: &View, c: &mut Correlation) {
    let canon_unpaired = |v: &View, paired: &[Option<usize>]| {
        let mut m: HashMap<String, Vec<usize>> = HashMap::default();
        for (i, s) in v.obj.symbols.iter().enumerate() {
            if paired[i].is_none()
                && s.is_func()
                && correlatable(v, i)
                && names::has_numeric_suffix(v.name(i))
            {
                m.entry(names::canonical(v.name(i))).or_default().push(i);
            }
        }
        m
    };
    let pm = canon_unpaired(p, &c.p2o);
    let om = canon_unpaired(o, &c.o2p);
    for (canon, pc) in &pm {
        if let (Some(oc), [pi]) = (om.get(canon), pc.as_slice()) {
            if let [oi] = oc.as_slice() {
                c.pair(*pi, *oi);
            }
        }
    }
}

/// 3. Static locals, through the paired functions that reference them; those no function
///    references (or referenced only by data): by name as a last resort.
fn static_locals(o: &View, p: &View, c: &mut Correlation) {
    let mut p_users: HashMap<usize, Vec<usize>> = HashMap::default();
    for (psec, _) in p.obj.sections.iter().enumerate() {
        let Some(pf) = p.bundled[psec] else { continue };
        if !p.obj.symbols[pf].is_func() {
            continue;
        }
        for r in p.relocs(psec) {
            if let Target::Sym { sym, .. } = p.compare_target(psec, r) {
                if c.p2o[sym].is_none() && is_static_local(p, sym) {
                    let users = p_users.entry(sym).or_default();
                    if !users.contains(&pf) {
                        users.push(pf);
                    }
                }
            }
        }
    }
    let mut users: Vec<(usize, Vec<usize>)> = p_users.into_iter().collect();
    users.sort();
    for (pi, funcs) in users {
        if c.p2o[pi].is_some() || !correlatable(p, pi) {
            continue;
        }
        let canon = names::canonical(p.name(pi));
        let mut found: Option<usize> = None;
        let mut conflict = false;
        for pf in funcs {
            let Some(of) = c.p2o[pf] else { continue };
            let Some(osec) = o.obj.symbols[of].section_index() else {
                continue;
            };
            for r in o.relocs(osec) {
                if let Target::Sym { sym: oi, .. } = o.compare_target(osec, r) {
                    if c.o2p[oi].is_none()
                        && is_static_local(o, oi)
                        && correlatable(o, oi)
                        && names::canonical(o.name(oi)) == canon
                    {
                        match found {
                            None => found = Some(oi),
                            Some(prev) if prev != oi => conflict = true,
                            _ => {}
                        }
                    }
                }
            }
        }
        if let (Some(oi), false) = (found, conflict) {
            c.pair(pi, oi);
        }
    }
    // Static locals no function references (or referenced only by data): by name as a last resort.
    for pi in 0..p.obj.symbols.len() {
        if c.p2o[pi].is_some() || !is_static_local(p, pi) || !correlatable(p, pi) {
            continue;
        }
        if let Some(oc) = o.by_name.get(p.name(pi)) {
            if let [oi] = oc.as_slice() {
                if c.o2p[*oi].is_none() && is_static_local(o, *oi) {
                    c.pair(pi, *oi);
                }
            }
        }
    }
}

/// Sections: through bundled symbols, else unique names; relocation sections follow their
/// targets.
fn sections(o: &View, p: &View, c: &mut Correlation) {
    let mut o_by_secname: HashMap<String, Vec<usize>> = HashMap::default();
    for (i, s) in o.obj.sections.iter().enumerate() {
        if o.bundled[i].is_none() && !s.is_reloc() && !names::is_numbered_section(&s.name_str()) {
            o_by_secname
                .entry(s.name_str().into_owned())
                .or_default()
                .push(i);
        }
    }
    let mut p_by_secname: HashMap<String, usize> = HashMap::default();
    for (i, s) in p.obj.sections.iter().enumerate() {
        if p.bundled[i].is_none() && !s.is_reloc() {
            *p_by_secname.entry(s.name_str().into_owned()).or_default() += 1;
        }
    }
    for (pi, s) in p.obj.sections.iter().enumerate() {
        if s.is_reloc() {
            continue;
        }
        c.sec_p2o[pi] = match p.bundled[pi] {
            Some(psym) => c.p2o[psym].and_then(|osym| {
                o.obj.symbols[osym]
                    .section_index()
                    .filter(|&os| o.bundled[os] == Some(osym))
            }),
            None => {
                let name = s.name_str();
                if names::is_numbered_section(&name) {
                    continue;
                }
                match (
                    o_by_secname.get(name.as_ref()),
                    p_by_secname.get(name.as_ref()),
                ) {
                    (Some(v), Some(1)) if v.len() == 1 => Some(v[0]),
                    _ => None,
                }
            }
        };
    }
    // Relocation sections follow their targets.
    for (pi, s) in p.obj.sections.iter().enumerate() {
        if s.is_reloc() {
            let t = s.info as usize;
            if let Some(ot) = c.sec_p2o.get(t).copied().flatten() {
                c.sec_p2o[pi] = o.reloc_sec.get(ot).copied().flatten();
            }
        }
    }
}
