//! Netlink framing: message headers, attributes, nesting. Byte-for-byte what libmnl
//! would lay out, so the kernel sees the same messages nft sends.

/// nf_tables message types (`enum nf_tables_msg_types`).
pub const NEWTABLE: u8 = 0;
pub const DELTABLE: u8 = 2;
pub const NEWCHAIN: u8 = 3;
pub const DELCHAIN: u8 = 5;
pub const NEWRULE: u8 = 6;
pub const DELRULE: u8 = 8;
pub const NEWSET: u8 = 9;
pub const DELSET: u8 = 11;
pub const NEWSETELEM: u8 = 12;
pub const DELSETELEM: u8 = 14;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
pub const NFPROTO_INET: u8 = 1;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_APPEND: u16 = 0x800;
pub const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;

/// A batch under construction: BATCH_BEGIN, then messages appended one by one.
pub struct Batch {
    pub buf: Vec<u8>,
    seq: u32,
    /// Offset of the message being written (its header is patched when it ends).
    open: Option<usize>,
    /// Offset of the last command message, which alone asks for an ACK.
    last: Option<usize>,
}

impl Batch {
    pub fn new() -> Batch {
        let mut b = Batch {
            buf: Vec::with_capacity(4096),
            seq: 0,
            open: None,
            last: None,
        };
        b.begin_raw(NFNL_MSG_BATCH_BEGIN, 0, 0, NFNL_SUBSYS_NFTABLES);
        b.end_msg();
        b
    }

    fn begin_raw(&mut self, ty: u16, flags: u16, family: u8, res_id: u16) {
        debug_assert!(self.open.is_none());
        self.seq += 1;
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf
            .extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: family, version 0, resource id (big endian).
        self.buf.push(family);
        self.buf.push(0);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        self.open = Some(start);
    }

    /// Start an nf_tables message on the inet family.
    pub fn begin(&mut self, msg: u8, flags: u16) {
        self.begin_raw(
            (NFNL_SUBSYS_NFTABLES << 8) | u16::from(msg),
            flags,
            NFPROTO_INET,
            0,
        );
        self.last = self.open;
    }

    /// Messages begun so far (the batch begin marker included).
    pub fn seq(&self) -> u32 {
        self.seq
    }

    pub fn end_msg(&mut self) {
        if let Some(start) = self.open.take() {
            let len = (self.buf.len() - start) as u32;
            self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
        }
    }

    /// Close the batch: the last command asks for an ACK (errors are always reported),
    /// so a successful batch answers with exactly one message. Returns the bytes and
    /// the sequence number of that message (None: no command at all).
    pub fn finish(mut self) -> (Vec<u8>, Option<u32>) {
        self.end_msg();
        let last_seq = self.last.map(|off| {
            let flags = u16::from_ne_bytes([self.buf[off + 6], self.buf[off + 7]]) | NLM_F_ACK;
            self.buf[off + 6..off + 8].copy_from_slice(&flags.to_ne_bytes());
            u32::from_ne_bytes(self.buf[off + 8..off + 12].try_into().unwrap_or_default())
        });
        self.begin_raw(NFNL_MSG_BATCH_END, 0, 0, NFNL_SUBSYS_NFTABLES);
        self.end_msg();
        (self.buf, last_seq)
    }

    pub fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// A NUL-terminated string attribute.
    pub fn str(&mut self, ty: u16, s: &str) {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.attr(ty, &v);
    }

    pub fn be32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_be_bytes());
    }

    /// Open a nested attribute; `close` patches its length.
    pub fn nest(&mut self, ty: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        start
    }

    pub fn close(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }
}

/// The user data TLVs nft attaches to objects (libnftnl `nftnl_udata`: type, length,
/// value).
#[derive(Default)]
pub struct Udata(pub Vec<u8>);

impl Udata {
    pub fn put(&mut self, ty: u8, data: &[u8]) -> &mut Self {
        self.0.push(ty);
        self.0.push(data.len() as u8);
        self.0.extend_from_slice(data);
        self
    }

    pub fn u32(&mut self, ty: u8, v: u32) -> &mut Self {
        self.put(ty, &v.to_ne_bytes())
    }
}
