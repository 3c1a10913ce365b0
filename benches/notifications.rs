//! Notification throughput: decode and apply a realistic mix of `<Update>` documents (Media
//! changes, dialog POST/PUT/DELETE, async errors), against a bare quick-xml tokenize pass
//! over the same bytes measured in the same run. Prints updates/s and the ratio, and the rate
//! for the same documents still escaped (as they travel inside `<notification>`; decoding
//! them costs one unescape more).

use std::collections::BTreeMap;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use finesse_taskd::finesse::model::{Notification, Update};
use finesse_taskd::reconcile::{DialogView, MediaView};

fn mix() -> Vec<String> {
    let dialog = |id: u32, state: &str| {
        format!(
            "<Dialog><uri>/finesse/api/Dialog/150001_{id}_1</uri><id>150001_{id}_1</id><associatedDialogUri></associatedDialogUri>\
             <mediaType>Chat_MRD</mediaType><mediaProperties><mediaId>5002</mediaId><dialedNumber></dialedNumber>\
             <queueNumber>5301</queueNumber><queueName>Chat.SG</queueName><callKeyCallId>{id}</callKeyCallId>\
             <callKeySequenceNum>1</callKeySequenceNum><callKeyPrefix>150001</callKeyPrefix><callvariables>\
             <CallVariable><name>callVariable1</name><value>ticket-{id}</value></CallVariable></callvariables>\
             </mediaProperties><participants><Participant><actions><action>ACCEPT</action></actions>\
             <mediaAddress>1001001</mediaAddress><startTime>2026-11-22T03:04:05.000Z</startTime><state>{state}</state>\
             <stateCause></stateCause><stateChangeTime>2026-11-22T03:04:05.000Z</stateChangeTime></Participant>\
             </participants><state>{state}</state></Dialog>"
        )
    };
    let mut docs = Vec::new();
    for i in 0..100u32 {
        docs.push(format!(
            "<Update><data><Media><uri>/finesse/api/User/1001001/Media/5002</uri><id>5002</id><name>Chat_MRD</name>\
             <maxDialogLimit>3</maxDialogLimit><interruptAction>ACCEPT</interruptAction><dialogLogoutAction>CLOSE</dialogLogoutAction>\
             <routable>true</routable><state>{}</state><reasonCodeId></reasonCodeId><stateChangeTime>2026-11-22T03:04:05.678Z</stateChangeTime>\
             </Media></data><event>PUT</event><requestId>r{i}</requestId><source>/finesse/api/User/1001001/Media/5002</source></Update>",
            if i % 2 == 0 { "READY" } else { "RESERVED" }
        ));
        docs.push(format!("<Update><data><dialogs>{}</dialogs></data><event>POST</event><requestId></requestId><source>/finesse/api/User/1001001/Media/5002/Dialogs</source></Update>", dialog(i, "OFFERED")));
        let inner = dialog(i, "ACTIVE");
        let inner = inner
            .trim_start_matches("<Dialog>")
            .trim_end_matches("</Dialog>");
        docs.push(format!("<Update><data><dialog>{inner}</dialog></data><event>PUT</event><requestId></requestId><source>/finesse/api/Dialog/150001_{i}_1</source></Update>"));
        docs.push(format!("<Update><data><dialogs>{}</dialogs></data><event>DELETE</event><requestId></requestId><source>/finesse/api/User/1001001/Media/5002/Dialogs</source></Update>", dialog(i, "CLOSED")));
        if i % 10 == 0 {
            docs.push("<Update><data><apiErrors><apiError><errorData>1</errorData><errorMedia>5002</errorMedia><errorMessage>E_ARM_STAT_AGENT_ALREADY_LOGGED_IN</errorMessage><errorType>Agent already logged into MRD</errorType></apiError></apiErrors></data><event>PUT</event><requestId>x</requestId><source>/finesse/api/User/1001001/Media/5002</source></Update>".into());
        }
    }
    docs
}

fn decode_and_apply(
    docs: &[String],
    dialogs: &mut BTreeMap<String, DialogView>,
    media: &mut BTreeMap<u32, MediaView>,
) {
    for d in docs {
        let Ok(u) = Update::decode(d) else { continue };
        match u.notification {
            Notification::Media(m) => {
                if let Some(id) = m.mrd() {
                    media.insert(id, MediaView::from_media(id, &m, None));
                }
            }
            Notification::DialogsAdded(list) => {
                for x in list {
                    let v = DialogView::from_dialog(x, 5002);
                    dialogs.insert(v.id.clone(), v);
                }
            }
            Notification::DialogChanged(x) => {
                let v = DialogView::from_dialog(x, 5002);
                dialogs.insert(v.id.clone(), v);
            }
            Notification::DialogsRemoved(list) => {
                for x in &list {
                    dialogs.remove(&x.id);
                }
            }
            _ => {}
        }
    }
}

fn tokenize(docs: &[String]) -> usize {
    let mut events = 0;
    for d in docs {
        let mut r = quick_xml::Reader::from_str(d);
        loop {
            match r.read_event() {
                Ok(quick_xml::events::Event::Eof) | Err(_) => break,
                Ok(_) => events += 1,
            }
        }
    }
    events
}

fn bench(c: &mut Criterion) {
    let docs = mix();
    let mut g = c.benchmark_group("notifications");
    g.throughput(Throughput::Elements(docs.len() as u64));
    g.bench_function("decode_and_apply", |b| {
        b.iter(|| {
            let (mut d, mut m) = (BTreeMap::new(), BTreeMap::new());
            decode_and_apply(&docs, &mut d, &mut m);
            d.len() + m.len()
        })
    });
    g.bench_function("bare_tokenize", |b| b.iter(|| tokenize(&docs)));
    g.finish();

    // One plain figure, same run: updates/s and the ratio to the tokenize floor (only under
    // `cargo bench`; `cargo test` runs each benchmark once as a check).
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rounds = 200;
    let t = Instant::now();
    for _ in 0..rounds {
        let (mut d, mut m) = (BTreeMap::new(), BTreeMap::new());
        decode_and_apply(&docs, &mut d, &mut m);
        std::hint::black_box((d.len(), m.len()));
    }
    let apply = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(tokenize(&docs));
    }
    let floor = t.elapsed().as_secs_f64();
    let escaped: Vec<String> = docs
        .iter()
        .map(|d| quick_xml::escape::escape(d.as_str()).into_owned())
        .collect();
    let t = Instant::now();
    for _ in 0..rounds {
        let (mut d, mut m) = (BTreeMap::new(), BTreeMap::new());
        decode_and_apply(&escaped, &mut d, &mut m);
        std::hint::black_box((d.len(), m.len()));
    }
    let escaped_time = t.elapsed().as_secs_f64();
    let n = (docs.len() * rounds) as f64;
    println!(
        "notification throughput: {:.0} updates/s decode+apply, {:.0} docs/s bare tokenize, ratio {:.2}, escaped form {:.0} updates/s (goal >= 200k/s and >= 0.3)",
        n / apply,
        n / floor,
        floor / apply,
        n / escaped_time
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
