//! TensorBoard's event protobufs (the fields written here), framed as TFRecords.

use prost::Message;

#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(message, optional, tag = "5")]
    summary: Option<Summary>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<Value>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Value {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
    #[prost(message, optional, tag = "8")]
    tensor: Option<Tensor>,
    #[prost(message, optional, tag = "9")]
    metadata: Option<Metadata>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Metadata {
    #[prost(message, optional, tag = "1")]
    plugin_data: Option<PluginData>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PluginData {
    #[prost(string, tag = "1")]
    plugin_name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Tensor {
    #[prost(int32, tag = "1")]
    dtype: i32,
    #[prost(double, repeated, tag = "6")]
    double_val: Vec<f64>,
}

/// One event: `train/loss` as a legacy simple value, `train/exact` as a DT_DOUBLE scalar tensor.
pub fn record(step: i64, wall_time: f64, single: f32, double: f64) -> Vec<u8> {
    let event = Event {
        wall_time,
        step,
        summary: Some(Summary {
            value: vec![
                Value {
                    tag: "train/loss".into(),
                    simple_value: Some(single),
                    tensor: None,
                    metadata: None,
                },
                Value {
                    tag: "train/exact".into(),
                    simple_value: None,
                    tensor: Some(Tensor {
                        dtype: 2,
                        double_val: vec![double],
                    }),
                    metadata: Some(Metadata {
                        plugin_data: Some(PluginData {
                            plugin_name: "scalars".into(),
                        }),
                    }),
                },
            ],
        }),
    };
    let body = event.encode_to_vec();
    let len = (body.len() as u64).to_le_bytes();
    let masked = |b: &[u8]| crc32c::crc32c(b).rotate_right(15).wrapping_add(0xa282_ead8);
    let mut out = Vec::new();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked(&len).to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&masked(&body).to_le_bytes());
    out
}
