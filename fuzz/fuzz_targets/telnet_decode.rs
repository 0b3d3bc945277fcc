//! Feeds arbitrary bytes to the reverse-telnet stream decoder, in two
//! chunks split where the first byte says. Besides "never panics" it
//! checks that the split does not matter (a command cut across two reads
//! decodes as in one), that data never grows (out <= in) and that an
//! endless subnegotiation is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy::smi::telnet::TelnetDecoder;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(input.len());
    let (mut whole_out, mut whole_reply) = (Vec::new(), Vec::new());
    let whole = TelnetDecoder::default().feed(input, &mut whole_out, &mut whole_reply);
    let (mut out, mut reply) = (Vec::new(), Vec::new());
    let mut decoder = TelnetDecoder::default();
    let split = decoder
        .feed(&input[..cut], &mut out, &mut reply)
        .and_then(|()| decoder.feed(&input[cut..], &mut out, &mut reply));
    assert_eq!(whole.is_ok(), split.is_ok());
    if whole.is_ok() {
        assert_eq!(whole_out, out);
        assert_eq!(whole_reply, reply);
    }
    assert!(out.len() <= input.len());
});
