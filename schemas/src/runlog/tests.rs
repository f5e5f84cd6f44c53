//! The run-log parser's tests: every line kind, the errors naming the field, exact numbers, benchmark lines,
//! and the JSON Schema file kept in step with the types.

mod lines {
    use super::super::*;

    fn metrics(text: &str) -> (MetricsLine, Vec<String>) {
        let p = parse_line(text).unwrap();
        match p.line {
            RunLogLine::Metrics(m) => (m, p.problems),
            other => panic!("not metrics: {other:?}"),
        }
    }

    #[test]
    fn metrics_line_with_all_axes() {
        let (m, problems) = metrics(
            r#"{"kind":"metrics","split":"train","step":120,"epoch":1,"time":1734359452,"x":{"tokens":61440},"values":{"loss":0.52,"acc":0.81}}"#,
        );
        assert!(problems.is_empty());
        assert_eq!(m.split.as_deref(), Some("train"));
        assert_eq!(m.step, Some(120));
        assert_eq!(m.epoch, Some(1.0));
        assert_eq!(m.x["tokens"], 61440.0);
        assert_eq!(m.values["loss"], Some(0.52));
    }

    #[test]
    fn values_keep_their_bits() {
        // What Python's json.dumps wrote; serde_json's default parser gave the neighbouring doubles.
        let (m, _) = metrics(
            r#"{"kind":"metrics","values":{"a":2.1963844280992926,"b":1.9454612825111754,"c":5e-324,"d":-0.0}}"#,
        );
        assert_eq!(
            m.values["a"].unwrap().to_bits(),
            2.196_384_428_099_292_6f64.to_bits()
        );
        assert_eq!(
            m.values["b"].unwrap().to_bits(),
            1.945_461_282_511_175_4f64.to_bits()
        );
        assert_eq!(m.values["c"].unwrap().to_bits(), 1);
        assert_eq!(m.values["d"].unwrap().to_bits(), (-0.0f64).to_bits());
    }

    proptest::proptest! {
        /// Any finite double, written as serde_json (ryu) or Rust's shortest `{:e}` writes it, reads back as
        /// itself, in values, epochs, custom axes and config.
        #[test]
        fn any_double_reads_back_bit_for_bit(bits in proptest::num::u64::ANY) {
            let v = f64::from_bits(bits);
            proptest::prop_assume!(v.is_finite());
            for text in [serde_json::to_string(&v).unwrap(), format!("{v:e}")] {
                let line = format!(
                    r#"{{"kind":"metrics","epoch":{text},"x":{{"t":{text}}},"values":{{"v":{text}}}}}"#
                );
                let (m, _) = metrics(&line);
                proptest::prop_assert_eq!(m.values["v"].unwrap().to_bits(), bits);
                proptest::prop_assert_eq!(m.epoch.unwrap().to_bits(), bits);
                proptest::prop_assert_eq!(m.x["t"].to_bits(), bits);
                let run = parse_line(&format!(r#"{{"kind":"run","config":{{"c":{text}}}}}"#)).unwrap();
                let RunLogLine::Run(r) = run.line else { panic!("not a run") };
                proptest::prop_assert_eq!(r.config["c"].as_f64().unwrap().to_bits(), bits);
            }
        }

        /// Integers of the whole i64 and u64 ranges stay integers in configs.
        #[test]
        fn config_integers_stay_integers(i in proptest::num::i64::ANY, u in proptest::num::u64::ANY) {
            let run = parse_line(&format!(r#"{{"kind":"run","config":{{"i":{i},"u":{u}}}}}"#)).unwrap();
            let RunLogLine::Run(r) = run.line else { panic!("not a run") };
            proptest::prop_assert_eq!(r.config["i"].as_i64(), Some(i));
            proptest::prop_assert_eq!(r.config["u"].as_u64(), Some(u));
        }
    }

    #[test]
    fn python_non_finite_numbers_are_values_and_null_is_missing() {
        let (m, problems) = metrics(
            r#"{"kind":"metrics","values":{"a":NaN,"b":Infinity,"c":-Infinity,"d":null,"e":"NaN in text"}}"#,
        );
        assert!(m.values["a"].unwrap().is_nan());
        assert_eq!(m.values["b"], Some(f64::INFINITY));
        assert_eq!(m.values["c"], Some(f64::NEG_INFINITY));
        assert_eq!(m.values["d"], None);
        assert_eq!(
            problems,
            vec![r#"values.e: expected a number, got "NaN in text""#]
        );
    }

    #[test]
    fn quoting_leaves_strings_alone() {
        let fixed = quote_non_finite(r#"{"t":"NaN \"Infinity\"","v":NaN}"#).unwrap();
        assert_eq!(fixed, r#"{"t":"NaN \"Infinity\"","v":"NaN"}"#);
        assert_eq!(quote_non_finite(r#"{"v":1}"#), None);
    }

    #[test]
    fn unknown_fields_are_kept() {
        let p = parse_line(r#"{"kind":"run","name":"a","config":{"lr":0.1},"git":"abc"}"#).unwrap();
        let RunLogLine::Run(run) = p.line else {
            panic!()
        };
        assert_eq!(run.extra["git"], "abc");
        assert_eq!(run.config["lr"], 0.1);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                r#"{"kind":"metrics","step":"x","values":{}}"#,
                "\"step\" must be an integer",
            ),
            (r#"{"kind":"metrics"}"#, "without \"values\""),
            (
                r#"{"kind":"run","config":[1]}"#,
                "\"config\" must be an object",
            ),
            (
                r#"{"kind":"status","status":"done"}"#,
                "unknown status \"done\"",
            ),
            (r#"{"kind":"bogus"}"#, "unknown kind \"bogus\""),
            (r#"{"values":{}}"#, "missing \"kind\""),
            (
                r#"{"kind":"metrics","time":"yesterday","values":{}}"#,
                "not RFC 3339",
            ),
            (r#"{"kind":"metrics","values":{"a":1}"#, "not a JSON object"),
            (r#"[1,2]"#, "not a JSON object"),
        ];
        for (text, want) in cases {
            let err = parse_line(text).unwrap_err().0;
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn typed_lines_round_trip_through_serde() {
        let text =
            r#"{"kind":"artifact","role":"checkpoint","path":"ck/best","sha256":"ab","size":3}"#;
        let parsed = parse_line(text).unwrap().line;
        let via_serde: RunLogLine = serde_json::from_str(text).unwrap();
        assert_eq!(parsed, via_serde);
    }
}

mod bench_lines {
    use super::super::*;

    #[test]
    fn bench_lines_parse_and_name_what_is_wrong() {
        let start = parse_line(
            r#"{"kind":"bench","bench":"cmr-1","config":{"a":1},"planned":3,"build":{"torch":"2.13.0"}}"#,
        )
        .unwrap();
        let RunLogLine::Bench(b) = start.line else {
            panic!("{start:?}")
        };
        assert_eq!((b.bench.as_str(), b.planned), ("cmr-1", Some(3)));
        let result = parse_line(
            r#"{"kind":"bench_result","bench":"cmr-1","analysis":"overhead","params":{"sequence_length":64},"values":{"baseline_time":0.5,"x":"fast","y":NaN},"samples":{"baseline_time":[0.4,0.6],"z":[1,"a"]}}"#,
        )
        .unwrap();
        assert_eq!(result.problems.len(), 2, "{:?}", result.problems);
        let RunLogLine::BenchResult(r) = result.line else {
            panic!()
        };
        assert_eq!(r.values["baseline_time"], Some(0.5));
        assert!(r.values["y"].unwrap().is_nan());
        assert_eq!(r.samples["baseline_time"], [0.4, 0.6]);
        let end =
            parse_line(r#"{"kind":"bench_end","bench":"cmr-1","status":"completed"}"#).unwrap();
        assert!(matches!(end.line, RunLogLine::BenchEnd(_)));
        for (text, says) in [
            (r#"{"kind":"bench"}"#, "missing \"bench\""),
            (r#"{"kind":"bench","bench":"../x"}"#, "not a valid id"),
            (
                r#"{"kind":"bench_result","bench":"a","values":{}}"#,
                "without \"analysis\"",
            ),
            (
                r#"{"kind":"bench_result","bench":"a","analysis":"o"}"#,
                "without \"values\"",
            ),
            (
                r#"{"kind":"bench_end","bench":"a","status":"done"}"#,
                "unknown benchmark status",
            ),
        ] {
            let err = parse_line(text).unwrap_err().0;
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}

mod schema_file {
    const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/json/runlog-line.schema.json");

    /// The shipped JSON Schema is the one the types generate (`LABD_WRITE_SCHEMAS=1` rewrites it).
    #[test]
    fn shipped_json_schema_matches_the_types() {
        let generated = serde_json::to_string_pretty(&super::super::json_schema()).unwrap() + "\n";
        if std::env::var_os("LABD_WRITE_SCHEMAS").is_some() {
            std::fs::write(FILE, &generated).unwrap();
        }
        let shipped = std::fs::read_to_string(FILE).unwrap_or_default();
        assert!(
            shipped == generated,
            "{FILE} is out of date: run `LABD_WRITE_SCHEMAS=1 cargo test -p labd-schemas`"
        );
    }
}

mod fast_path {
    use super::super::parse::general;
    use super::super::*;
    use proptest::prelude::*;

    /// One field of a generated line: a key (maybe escaped, maybe unknown) and a value of the right or a wrong
    /// type.
    fn field() -> impl Strategy<Value = String> {
        let kind = prop::sample::select(vec![
            r#""kind":"metrics""#,
            r#""kind":"run""#,
            r#""kind":1"#,
            r#""ki\u006ed":"metrics""#,
        ]);
        let split = prop::sample::select(vec![
            r#""split":"train""#,
            r#""split":null"#,
            r#""split":5"#,
            r#""split":"v\"al""#,
        ]);
        let step = prop::sample::select(vec![
            r#""step":3"#,
            r#""step":-2"#,
            r#""step":3.0"#,
            r#""step":3.5"#,
            r#""step":1e20"#,
            r#""step":18446744073709551615"#,
            r#""step":null"#,
            r#""step":"4""#,
        ]);
        let epoch = prop::sample::select(vec![
            r#""epoch":1"#,
            r#""epoch":1.25"#,
            r#""epoch":null"#,
            r#""epoch":"NaN""#,
            r#""epoch":"x""#,
            r#""epoch":-0"#,
        ]);
        let time = prop::sample::select(vec![
            r#""time":1734359452.123"#,
            r#""time":1734359452"#,
            r#""time":"2024-12-16T14:30:52Z""#,
            r#""time":"yesterday""#,
            r#""time":-5"#,
            r#""time":null"#,
            r#""time":[1]"#,
        ]);
        let x = prop::sample::select(vec![
            r#""x":{"tokens":61440}"#,
            r#""x":null"#,
            r#""x":{"a":null,"b":2.5}"#,
            r#""x":{"a":"x"}"#,
            r#""x":5"#,
        ]);
        let values = prop::sample::select(vec![
            r#""values":{"loss":0.1,"acc":"NaN","b":null}"#,
            r#""values":{"loss":0.30000000000000004,"n":-7,"big":18446744073709551615}"#,
            r#""values":{"a":"x","b":1}"#,
            r#""values":{}"#,
            r#""values":[]"#,
            r#""values":null"#,
            r#""values":{"a":1,"a":2}"#,
            r#""va\u006cues":{"l\u00f6ss":-Infinity}"#,
            r#""values":{"l":NaN}"#,
            r#""values":{"l":1e400}"#,
        ]);
        let extra = prop::sample::select(vec![
            r#""note":"hi""#,
            r#""z":[1,{"q":null}]"#,
            r#""n":2.5e-8"#,
        ]);
        prop_oneof![
            kind.prop_map(String::from),
            split.prop_map(String::from),
            step.prop_map(String::from),
            epoch.prop_map(String::from),
            time.prop_map(String::from),
            x.prop_map(String::from),
            values.prop_map(String::from),
            extra.prop_map(String::from),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Whatever line the fast path takes, it reads exactly as the general parser does (every bit: NaN and
        /// -0.0 compared by their debug text), with no problems; and plain well-formed lines are taken.
        #[test]
        fn fast_path_reads_as_the_general_parser(fields in prop::collection::vec(field(), 0..9), plain in any::<bool>()) {
            let mut fields = fields;
            if plain {
                fields.insert(0, r#""kind":"metrics""#.into());
                fields.push(r#""values":{"loss":0.25}"#.into());
            }
            let text = format!("{{{}}}", fields.join(","));
            if let Some(fast) = super::super::fast_metrics(&text) {
                let general = general(&text);
                let Ok(Parsed { line: RunLogLine::Metrics(m), problems }) = general else {
                    panic!("fast path took {text}, the general parser gave {general:?}");
                };
                prop_assert!(problems.is_empty(), "{text}: {problems:?}");
                prop_assert_eq!(format!("{fast:?}"), format!("{m:?}"), "{}", text);
                // The row form drops the nulls, and is otherwise the same line.
                let row = super::super::metrics_row(&text).expect("the row form takes what the line form takes");
                let present: std::collections::BTreeMap<_, _> =
                    m.values.iter().filter_map(|(k, v)| Some((k.clone(), (*v)?))).collect();
                prop_assert_eq!(format!("{:?}", row.values), format!("{present:?}"));
                prop_assert_eq!(
                    format!("{:?}", (&row.split, row.step, row.epoch, &row.time, &row.x, &row.extra)),
                    format!("{:?}", (&m.split, m.step, m.epoch, &m.time, &m.x, &m.extra))
                );
            } else {
                prop_assert!(super::super::metrics_row(&text).is_none());
            }
        }
    }

    /// A plain line of generated numbers, in the forms writers use (shortest round trip, Python's repr,
    /// fixed digits, exponents, integers).
    fn plain_line() -> impl Strategy<Value = String> {
        let number = prop_oneof![
            any::<f64>()
                .prop_filter("finite", |v| v.is_finite())
                .prop_map(|v| format!("{v:?}")),
            any::<f64>()
                .prop_filter("finite", |v| v.is_finite())
                .prop_map(|v| format!("{v:e}")),
            any::<f32>()
                .prop_filter("finite", |v| v.is_finite())
                .prop_map(|v| format!("{:.9}", v)),
            any::<i64>().prop_map(|v| v.to_string()),
            any::<u64>().prop_map(|v| v.to_string()),
            Just("-0".to_string()),
            Just("1e400".to_string()),
            Just("null".to_string()),
        ];
        let step = prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            any::<u64>().prop_map(|v| v.to_string()),
            Just("-0".to_string()),
            Just("null".to_string()),
            Just("7.0".to_string()),
        ];
        let time = prop_oneof![
            (0f64..4e9).prop_map(|v| format!("{v:?}")),
            (0u64..4_000_000_000).prop_map(|v| v.to_string()),
            Just("null".to_string()),
            Just("1e300".to_string()),
        ];
        (number.clone(), number, time, step, prop::sample::select(vec![r#""train""#, "null", r#""v\u00e4l""#, r#""wärme""#]))
            .prop_map(|(a, b, t, step, split)| {
                format!(
                    r#"{{"kind":"metrics","split":{split},"step":{step},"epoch":{a},"time":{t},"values":{{"loss":{a},"acc":{b},"z":{b}}}}}"#
                )
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The hand scanner reads every plain line it takes exactly as serde does (same bits).
        #[test]
        fn the_scanner_reads_as_serde(text in plain_line()) {
            if let Some(scanned) = super::super::scan::metrics_row(&text) {
                let serde = super::super::fast::serde_row(&text);
                prop_assert_eq!(format!("{:?}", Some(scanned)), format!("{serde:?}"), "{}", text);
            }
        }
    }

    #[test]
    fn plain_lines_take_the_scanner() {
        for text in [
            r#"{"kind":"metrics","split":"train","step":0,"epoch":0,"time":1760000000.000,"values":{"loss":1.024887,"acc":1.044618}}"#,
            r#" { "kind" : "metrics" , "values" : { "a" : -0 , "b" : null } } "#,
            r#"{"values":{"l":5e-324},"kind":"metrics","step":-3,"split":null}"#,
        ] {
            assert!(super::super::scan::metrics_row(text).is_some(), "{text}");
        }
        for text in [
            r#"{"kind":"metrics","values":{"l":"NaN"}}"#,
            r#"{"kind":"metrics","x":{"t":1},"values":{}}"#,
            r#"{"kind":"metrics","note":"n","values":{}}"#,
            r#"{"kind":"metrics","values":{"a":1,"a":2}}"#,
            r#"{"kind":"metrics","split":"a\"b","values":{}}"#,
            r#"{"kind":"metrics","step":1.5,"values":{}}"#,
            r#"{"kind":"metrics","values":{"l":1e400}}"#,
            r#"{"kind":"metrics","time":"2024-12-16T14:30:52Z","values":{}}"#,
            r#"{"kind":"metrics","values":{}}x"#,
            r#"{"kind":"metrics","values":{"a":01}}"#,
        ] {
            assert!(super::super::scan::metrics_row(text).is_none(), "{text}");
        }
    }

    #[test]
    fn plain_lines_take_the_fast_path() {
        for text in [
            r#"{"kind":"metrics","split":"train","step":120,"epoch":1,"time":1734359452,"x":{"tokens":61440},"values":{"loss":0.52,"acc":0.81}}"#,
            r#"{"values":{"loss":"NaN","acc":null},"kind":"metrics","note":"kept"}"#,
            r#"{"kind":"metrics","time":"2024-12-16T14:30:52Z","values":{"a":-0.0}}"#,
        ] {
            assert!(super::super::fast_metrics(text).is_some(), "{text}");
        }
        for text in [
            r#"{"kind":"run","name":"a"}"#,
            r#"{"kind":"metrics","values":{"l":NaN}}"#,
            r#"{"kind":"metrics","values":{"a":"x"}}"#,
            r#"{"kind":"metrics","step":1,"step":2,"values":{}}"#,
            r#"{"kind":"metrics","time":"yesterday","values":{}}"#,
            r#"{"kind":"metrics","values":{}} x"#,
        ] {
            assert!(super::super::fast_metrics(text).is_none(), "{text}");
        }
    }
}
