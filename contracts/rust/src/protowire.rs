//! Just enough of the protobuf wire format to read the custom options out of the buf image and a
//! string field out of an encoded event: prost-types drops unknown (extension) fields, and prost
//! has no reflection.

use prost::encoding::decode_varint;

/// One field of an encoded message: its number and, for length-delimited fields, the bytes.
pub(crate) struct Field<'a> {
    pub number: u32,
    pub bytes: Option<&'a [u8]>,
}

/// The fields of an encoded message in order; None when the bytes are not valid protobuf.
pub(crate) fn fields(mut buf: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = decode_varint(&mut buf).ok()?;
        let number = u32::try_from(key >> 3).ok().filter(|n| *n > 0)?;
        let bytes = match key & 7 {
            0 => {
                decode_varint(&mut buf).ok()?;
                None
            }
            1 => {
                buf = buf.get(8..)?;
                None
            }
            2 => {
                let len = usize::try_from(decode_varint(&mut buf).ok()?).ok()?;
                let (value, rest) = (buf.get(..len)?, buf.get(len..)?);
                buf = rest;
                Some(value)
            }
            5 => {
                buf = buf.get(4..)?;
                None
            }
            _ => return None, // groups (3, 4) are not used by proto3 contracts
        };
        out.push(Field { number, bytes });
    }
    Some(out)
}

/// The varint value of the last occurrence of field `number`.
pub(crate) fn varint_field(buf: &[u8], number: u32) -> Option<u64> {
    let mut b = buf;
    let mut found = None;
    while !b.is_empty() {
        let key = decode_varint(&mut b).ok()?;
        match key & 7 {
            0 => {
                let v = decode_varint(&mut b).ok()?;
                if (key >> 3) as u32 == number {
                    found = Some(v);
                }
            }
            1 => b = b.get(8..)?,
            2 => {
                let len = usize::try_from(decode_varint(&mut b).ok()?).ok()?;
                b = b.get(len..)?;
            }
            5 => b = b.get(4..)?,
            _ => return None,
        }
    }
    found
}

/// The bytes of the last occurrence of length-delimited field `number` (proto3 "last one wins").
pub(crate) fn bytes_field(buf: &[u8], number: u32) -> Option<&[u8]> {
    fields(buf)?
        .into_iter()
        .filter(|f| f.number == number)
        .filter_map(|f| f.bytes)
        .last()
}

/// The string value of field `number`, or "" when absent.
pub(crate) fn string_field(buf: &[u8], number: u32) -> String {
    bytes_field(buf, number)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}
