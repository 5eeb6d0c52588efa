//! The owned object model: plain data, indices as in the ELF file.
//!
//! `sections[i]` is ELF section `i` (index 0 is the null section); `symbols[i]` is symbol `i`
//! (index 0 is the null symbol). Relocations live inside their relocation section and refer to
//! symbols by index. The string tables, the symbol table and `.symtab_shndx` are placeholders in
//! `sections` (their contents are regenerated on write), so section indices stay stable.

use object::elf;

/// A relocatable ELF64 object, or the symbol table of a linked file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// `e_type` (ET_REL for objects and modules, ET_EXEC for vmlinux).
    pub e_type: u16,
    /// `e_machine`.
    pub e_machine: u16,
    /// `e_flags`.
    pub e_flags: u32,
    /// `e_ident[EI_OSABI]`.
    pub os_abi: u8,
    /// `e_ident[EI_ABIVERSION]`.
    pub abi_version: u8,
    /// Big-endian (`ELFDATA2MSB`: s390x); written back the same way.
    pub big_endian: bool,
    /// Sections by index; `sections[0]` is the null section.
    pub sections: Vec<Section>,
    /// Symbols by index; `symbols[0]` is the null symbol.
    pub symbols: Vec<Symbol>,
}

/// One section header and its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Name bytes (no NUL).
    pub name: Vec<u8>,
    /// `sh_type`.
    pub sh_type: u32,
    /// `sh_flags`.
    pub flags: u64,
    /// `sh_addr`.
    pub addr: u64,
    /// `sh_addralign`.
    pub align: u64,
    /// `sh_entsize`.
    pub entsize: u64,
    /// `sh_link`, for sections whose link the model does not interpret.
    pub link: u32,
    /// `sh_info`: the target section of a relocation section, the signature symbol of a group.
    pub info: u32,
    /// Contents.
    pub data: SectionData,
}

/// Contents of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionData {
    /// The null section.
    Null,
    /// Bytes stored in the file.
    Bytes(Vec<u8>),
    /// SHT_NOBITS: only a size.
    NoBits(u64),
    /// SHT_RELA (`is_rela`) or SHT_REL relocations, applying to section `info`.
    Relocs {
        /// True for SHT_RELA.
        is_rela: bool,
        /// The relocations, in file order.
        relocs: Vec<Reloc>,
    },
    /// SHT_GROUP: flags and member section indices; `info` is the signature symbol.
    Group {
        /// GRP_* flags.
        flags: u32,
        /// Member section indices.
        members: Vec<u32>,
    },
    /// The symbol table (contents are `Object::symbols`).
    SymTab,
    /// The symbol string table (regenerated).
    StrTab,
    /// The section name string table (regenerated).
    ShStrTab,
    /// Extended section indices (regenerated when needed).
    SymTabShndx,
}

/// One relocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reloc {
    /// `r_offset` within the target section.
    pub offset: u64,
    /// Index of the symbol in `Object::symbols`.
    pub sym: u32,
    /// `r_type`.
    pub r_type: u32,
    /// `r_addend` (0 for SHT_REL).
    pub addend: i64,
}

/// Where a symbol is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SymSection {
    /// SHN_UNDEF.
    Undef,
    /// A section index (from `st_shndx` or, for SHN_XINDEX, from `.symtab_shndx`).
    Section(u32),
    /// Any other reserved value (SHN_ABS, SHN_COMMON, SHN_LIVEPATCH, ...), raw.
    Special(u16),
}

/// One symbol table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// Name bytes (no NUL).
    pub name: Vec<u8>,
    /// `st_info` (binding << 4 | type).
    pub info: u8,
    /// `st_other` (visibility).
    pub other: u8,
    /// The raw `st_shndx` as read (SHN_XINDEX for extended indices).
    pub st_shndx: u16,
    /// Where the symbol is defined, with extended indices resolved.
    pub section: SymSection,
    /// `st_value`.
    pub value: u64,
    /// `st_size`.
    pub size: u64,
}

impl Symbol {
    /// `STT_*`.
    pub fn st_type(&self) -> u8 {
        self.info & 0xf
    }
    /// `STB_*`.
    pub fn st_bind(&self) -> u8 {
        self.info >> 4
    }
    /// Name as text (lossy for non-UTF-8 names, which the kernel does not produce).
    pub fn name_str(&self) -> std::borrow::Cow<'_, str> {
        text(&self.name)
    }
    /// STB_LOCAL.
    pub fn is_local(&self) -> bool {
        self.st_bind() == elf::STB_LOCAL.0
    }
    /// STT_FUNC.
    pub fn is_func(&self) -> bool {
        self.st_type() == elf::STT_FUNC.0
    }
    /// STT_OBJECT.
    pub fn is_object(&self) -> bool {
        self.st_type() == elf::STT_OBJECT.0
    }
    /// STT_SECTION.
    pub fn is_section(&self) -> bool {
        self.st_type() == elf::STT_SECTION.0
    }
    /// STT_FILE.
    pub fn is_file(&self) -> bool {
        self.st_type() == elf::STT_FILE.0
    }
    /// Undefined (SHN_UNDEF).
    pub fn is_undef(&self) -> bool {
        self.section == SymSection::Undef
    }
    /// The defining section index, if defined in a section.
    pub fn section_index(&self) -> Option<usize> {
        match self.section {
            SymSection::Section(i) => Some(i as usize),
            _ => None,
        }
    }
    /// Builds `st_info`.
    pub fn make_info(bind: u8, st_type: u8) -> u8 {
        (bind << 4) | (st_type & 0xf)
    }
}

impl Section {
    /// Name as text.
    pub fn name_str(&self) -> std::borrow::Cow<'_, str> {
        text(&self.name)
    }
    /// The bytes of a section stored in the file (empty for others).
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            SectionData::Bytes(b) => b,
            _ => &[],
        }
    }
    /// Size in memory.
    pub fn size(&self) -> u64 {
        match &self.data {
            SectionData::Bytes(b) => b.len() as u64,
            SectionData::NoBits(n) => *n,
            _ => 0,
        }
    }
    /// The relocations of a relocation section.
    pub fn relocs(&self) -> Option<&[Reloc]> {
        match &self.data {
            SectionData::Relocs { relocs, .. } => Some(relocs),
            _ => None,
        }
    }
    /// SHF_ALLOC.
    pub fn is_alloc(&self) -> bool {
        self.flags & elf::SHF_ALLOC.0 != 0
    }
    /// SHF_EXECINSTR.
    pub fn is_exec(&self) -> bool {
        self.flags & elf::SHF_EXECINSTR.0 != 0
    }
    /// A relocation section (SHT_RELA or SHT_REL).
    pub fn is_reloc(&self) -> bool {
        matches!(self.data, SectionData::Relocs { .. })
    }
}

impl Object {
    /// An empty relocatable x86_64 object with the null section and null symbol.
    pub fn new_relocatable(e_machine: u16) -> Object {
        Object {
            e_type: elf::ET_REL.0,
            e_machine,
            e_flags: 0,
            os_abi: 0,
            abi_version: 0,
            big_endian: false,
            sections: vec![Section {
                name: Vec::new(),
                sh_type: 0,
                flags: 0,
                addr: 0,
                align: 0,
                entsize: 0,
                link: 0,
                info: 0,
                data: SectionData::Null,
            }],
            symbols: vec![Symbol {
                name: Vec::new(),
                info: 0,
                other: 0,
                st_shndx: 0,
                section: SymSection::Undef,
                value: 0,
                size: 0,
            }],
        }
    }

    /// Section `i`, if it exists.
    pub fn section(&self, i: usize) -> Option<&Section> {
        self.sections.get(i)
    }

    /// Symbol `i`, if it exists.
    pub fn symbol(&self, i: usize) -> Option<&Symbol> {
        self.symbols.get(i)
    }

    /// The first section with this name.
    pub fn section_by_name(&self, name: &str) -> Option<usize> {
        self.sections.iter().position(|s| s.name == name.as_bytes())
    }

    /// For each section index, the index of the relocation section that applies to it.
    pub fn reloc_section_map(&self) -> Vec<Option<usize>> {
        let mut map = vec![None; self.sections.len()];
        for (i, s) in self.sections.iter().enumerate() {
            if s.is_reloc() {
                if let Some(slot) = map.get_mut(s.info as usize) {
                    *slot = Some(i);
                }
            }
        }
        map
    }

    /// The relocations applying to section `target` (empty if none).
    pub fn relocs_for<'a>(&'a self, map: &[Option<usize>], target: usize) -> &'a [Reloc] {
        map.get(target)
            .copied()
            .flatten()
            .and_then(|r| self.sections.get(r))
            .and_then(|s| s.relocs())
            .unwrap_or(&[])
    }

    /// Appends a section; returns its index.
    pub fn push_section(&mut self, section: Section) -> usize {
        self.sections.push(section);
        self.sections.len() - 1
    }

    /// Appends a symbol; returns its index. Call [`Object::sort_symbols_locals_first`] before
    /// writing if globals may precede locals.
    pub fn push_symbol(&mut self, symbol: Symbol) -> usize {
        self.symbols.push(symbol);
        self.symbols.len() - 1
    }

    /// The index of the symbol table section, if any.
    pub fn symtab_index(&self) -> Option<usize> {
        self.sections
            .iter()
            .position(|s| matches!(s.data, SectionData::SymTab))
    }

    /// Reorders symbols so that locals come first (as ELF requires), keeping relative order, and
    /// renumbers every reference (relocations, group signatures). Returns old->new indices.
    pub fn sort_symbols_locals_first(&mut self) -> Vec<u32> {
        let n = self.symbols.len();
        let mut order: Vec<usize> = (0..n).collect();
        // Null symbol stays first; stable sort keeps relative order.
        order.sort_by_key(|&i| (i != 0, !self.symbols[i].is_local()));
        let mut old_to_new = vec![0u32; n];
        for (new, &old) in order.iter().enumerate() {
            old_to_new[old] = new as u32;
        }
        let old_symbols = std::mem::take(&mut self.symbols);
        let mut slots: Vec<Option<Symbol>> = old_symbols.into_iter().map(Some).collect();
        self.symbols = order
            .iter()
            .filter_map(|&old| slots.get_mut(old).and_then(Option::take))
            .collect();
        self.remap_symbols(&old_to_new);
        old_to_new
    }

    /// Rewrites every symbol index in relocations and group signatures through `map`.
    pub fn remap_symbols(&mut self, map: &[u32]) {
        for s in &mut self.sections {
            match &mut s.data {
                SectionData::Relocs { relocs, .. } => {
                    for r in relocs {
                        if let Some(&n) = map.get(r.sym as usize) {
                            r.sym = n;
                        }
                    }
                }
                SectionData::Group { .. } => {
                    if let Some(&n) = map.get(s.info as usize) {
                        s.info = n;
                    }
                }
                _ => {}
            }
        }
    }

    /// The number of leading local symbols (the symtab's `sh_info`).
    pub fn num_locals(&self) -> usize {
        self.symbols
            .iter()
            .enumerate()
            .take_while(|(i, s)| *i == 0 || s.is_local())
            .count()
    }
}

/// How section and symbol indices moved in [`Object::remove_sections`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renumbering {
    /// For each old section index, its new index (`None`: removed).
    pub sections: Vec<Option<u32>>,
    /// For each old symbol index, its new index (`None`: removed).
    pub symbols: Vec<Option<u32>>,
}

impl Object {
    /// Removes the sections `remove`, the relocation sections that apply to them, and the symbols
    /// defined in any removed section; renumbers every section reference that remains (symbol
    /// sections, relocation targets, `SHF_INFO_LINK` infos, `sh_link`s, group members) and every
    /// symbol reference (relocations, group signatures). Group members that are removed are
    /// dropped from their group. Relative order of what remains is kept, so locals stay first.
    ///
    /// Fails, leaving the object unchanged, when an index is out of range, names the null
    /// section or one of the regenerated tables, or when something that remains would refer to
    /// a removed symbol (a relocation, a group signature) or a removed section (an `sh_link` or
    /// `SHF_INFO_LINK` info).
    pub fn remove_sections(&mut self, remove: &[usize]) -> crate::Result<Renumbering> {
        let nsec = self.sections.len();
        let mut gone = vec![false; nsec];
        for &i in remove {
            let Some(s) = self.sections.get(i) else {
                return Err(crate::Error::Write(format!(
                    "cannot remove section {i}: there are {nsec}"
                )));
            };
            if matches!(
                s.data,
                SectionData::Null
                    | SectionData::SymTab
                    | SectionData::StrTab
                    | SectionData::ShStrTab
                    | SectionData::SymTabShndx
            ) {
                return Err(crate::Error::Write(format!(
                    "cannot remove section {i} ({}): the null section and the symbol and string \
                     tables stay",
                    s.name_str()
                )));
            }
            gone[i] = true;
        }
        // Relocation sections of removed sections go too.
        for (i, s) in self.sections.iter().enumerate() {
            if s.is_reloc() && gone.get(s.info as usize).copied().unwrap_or(false) {
                gone[i] = true;
            }
        }

        let mut sec_map = vec![None; nsec];
        let mut next = 0u32;
        for (i, slot) in sec_map.iter_mut().enumerate() {
            if !gone[i] {
                *slot = Some(next);
                next += 1;
            }
        }
        let sym_gone: Vec<bool> = self
            .symbols
            .iter()
            .map(|s| match s.section {
                SymSection::Section(i) => gone.get(i as usize).copied().unwrap_or(false),
                _ => false,
            })
            .collect();
        let mut sym_map = vec![None; self.symbols.len()];
        let mut next = 0u32;
        for (i, slot) in sym_map.iter_mut().enumerate() {
            if !sym_gone[i] {
                *slot = Some(next);
                next += 1;
            }
        }

        // Check that nothing remaining refers to what goes.
        let is_gone_sym = |i: u32| sym_gone.get(i as usize).copied().unwrap_or(false);
        let is_gone_sec = |i: u32| gone.get(i as usize).copied().unwrap_or(false);
        for (i, s) in self.sections.iter().enumerate() {
            if gone[i] {
                continue;
            }
            if s.link != 0 && is_gone_sec(s.link) {
                return Err(crate::Error::Write(format!(
                    "cannot remove sections: {} links to removed section {}",
                    s.name_str(),
                    s.link
                )));
            }
            match &s.data {
                SectionData::Relocs { relocs, .. } => {
                    if let Some(r) = relocs.iter().find(|r| is_gone_sym(r.sym)) {
                        let what = match self.symbols.get(r.sym as usize) {
                            Some(sym) if sym.name.is_empty() => format!(
                                "the section symbol of {}",
                                sym.section_index()
                                    .and_then(|i| self.sections.get(i))
                                    .map(|t| t.name_str().into_owned())
                                    .unwrap_or_default()
                            ),
                            Some(sym) => format!("`{}`", sym.name_str()),
                            None => format!("symbol {}", r.sym),
                        };
                        return Err(crate::Error::Write(format!(
                            "cannot remove sections: {} has a relocation at {:#x} against {what}, \
                             defined in a removed section",
                            s.name_str(),
                            r.offset,
                        )));
                    }
                }
                SectionData::Group { .. } => {
                    if is_gone_sym(s.info) {
                        return Err(crate::Error::Write(format!(
                            "cannot remove sections: the signature of group {} is defined in a \
                             removed section",
                            s.name_str()
                        )));
                    }
                }
                _ => {
                    if s.flags & elf::SHF_INFO_LINK.0 != 0 && is_gone_sec(s.info) {
                        return Err(crate::Error::Write(format!(
                            "cannot remove sections: the info of {} names removed section {}",
                            s.name_str(),
                            s.info
                        )));
                    }
                }
            }
        }

        // Apply.
        let remap_sec = |i: u32| -> u32 { sec_map.get(i as usize).copied().flatten().unwrap_or(i) };
        let old_sections = std::mem::take(&mut self.sections);
        for (i, mut s) in old_sections.into_iter().enumerate() {
            if gone[i] {
                continue;
            }
            if s.link != 0 {
                s.link = remap_sec(s.link);
            }
            match &mut s.data {
                SectionData::Relocs { .. } => s.info = remap_sec(s.info),
                SectionData::Group { members, .. } => {
                    members.retain(|&m| !is_gone_sec(m));
                    for m in members.iter_mut() {
                        *m = remap_sec(*m);
                    }
                }
                SectionData::Null
                | SectionData::SymTab
                | SectionData::StrTab
                | SectionData::ShStrTab
                | SectionData::SymTabShndx => {}
                SectionData::Bytes(_) | SectionData::NoBits(_) => {
                    if s.flags & elf::SHF_INFO_LINK.0 != 0 {
                        s.info = remap_sec(s.info);
                    }
                }
            }
            self.sections.push(s);
        }
        let old_symbols = std::mem::take(&mut self.symbols);
        for (i, mut sym) in old_symbols.into_iter().enumerate() {
            if sym_gone[i] {
                continue;
            }
            if let SymSection::Section(x) = sym.section {
                let n = remap_sec(x);
                sym.section = SymSection::Section(n);
                sym.st_shndx = if n < u32::from(elf::SHN_LORESERVE) {
                    n as u16
                } else {
                    elf::SHN_XINDEX.0
                };
            }
            self.symbols.push(sym);
        }
        let flat: Vec<u32> = sym_map.iter().map(|m| m.unwrap_or(0)).collect();
        self.remap_symbols(&flat);
        // The symbol table's info is its local count.
        let nlocal = self.num_locals() as u32;
        for s in &mut self.sections {
            if matches!(s.data, SectionData::SymTab) {
                s.info = nlocal;
            }
        }
        Ok(Renumbering {
            sections: sec_map,
            symbols: sym_map,
        })
    }
}

/// A name as text: borrowed when it is UTF-8 (`str::from_utf8`'s ASCII fast path: several
/// times faster than `from_utf8_lossy`'s validation on the short ASCII names of an object, and
/// every symbol's name is read), repaired lossily otherwise.
fn text(name: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(name) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(name),
    }
}
