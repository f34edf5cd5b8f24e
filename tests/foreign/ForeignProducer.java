/*
 * A runwire producer that is not runwire: Apache kafka-clients and Apache Avro
 * (GenericRecord), written from schemas/README.md and the .avsc files alone.
 *
 * Contract:
 * - Usage: java ForeignProducer BOOTSTRAP SCHEMAS_DIR RUN_TOPIC SESSION_TOPIC MEMORY_TOPIC
 *   Reads a plan from stdin, one JSON object per line, and publishes each
 *   line as one event, in order; prints one JSON line per event to stdout:
 *   {"event_id", "type", "topic", "partition", "offset"}.
 * - A plan line: {"type": "<event type>", "envelope": {run_id, session_id,
 *   agent_id, turn_id, user_id, tenant, labels}, "payload": {...},
 *   "caused_by": <index of an earlier line>}. Payload fields the schema marks
 *   "contentType": "application/json" may be given as any JSON value: they
 *   are written as compact JSON text.
 * - Everything else is the producer's job, as the README says: the newest
 *   <type>.v<N>.avsc is the writer schema; event_id is a UUIDv7; occurred_at
 *   is now; the topic is chosen by the type (session_* on the session-events
 *   topic, memory_* on the memory topic, the rest on run events); the key is
 *   run_id, session_id, or the compact JSON array ["scope","owner","key"];
 *   the value is Avro single-object encoding (C3 01, the little-endian
 *   CRC-64-AVRO fingerprint, the body); headers runwire-type,
 *   runwire-event-id, runwire-schema (16 hex digits); memory_deleted is a
 *   tombstone with runwire-occurred-at and runwire-producer headers.
 * - The partition is kafka-clients' default for keyed records (murmur2),
 *   which is the contract's; the producer is idempotent with acks=all, so
 *   the records of one key land in plan order.
 */

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.core.json.JsonWriteFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.Future;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.generic.GenericRecordBuilder;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class ForeignProducer {
    static final String PRODUCER = "java-foreign-producer";
    // Jackson's defaults but one: a control character's escape in lowercase hex
    // (backslash, u, 001f), the contract's spelling of a memory key (its bytes are the key).
    static final ObjectMapper JSON = JsonMapper.builder()
            .disable(JsonWriteFeature.WRITE_HEX_UPPER_CASE)
            .build();
    static final SecureRandom RANDOM = new SecureRandom();
    static final Pattern FILE = Pattern.compile("(.+)\\.v(\\d+)\\.avsc");

    /** The newest released schema of every event type, by type. */
    static Map<String, Schema> newestSchemas(File dir) throws Exception {
        Map<String, Integer> versions = new HashMap<>();
        Map<String, Schema> schemas = new HashMap<>();
        File[] files = dir.listFiles();
        if (files == null) throw new IllegalArgumentException("no schemas dir " + dir);
        for (File f : files) {
            Matcher m = FILE.matcher(f.getName());
            if (!m.matches()) continue;
            int version = Integer.parseInt(m.group(2));
            if (version > versions.getOrDefault(m.group(1), 0)) {
                versions.put(m.group(1), version);
                // A fresh parser per file: every file defines its own named types.
                schemas.put(m.group(1), new Schema.Parser().parse(f));
            }
        }
        return schemas;
    }

    /** A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, version 7, variant 10, random. */
    static String uuid7() {
        long millis = System.currentTimeMillis();
        long high = (millis << 16) | 0x7000L | (RANDOM.nextInt() & 0x0fff);
        long low = (RANDOM.nextLong() & 0x3fffffffffffffffL) | 0x8000000000000000L;
        return new UUID(high, low).toString();
    }

    /** A JSON value as the Avro value of ``schema`` (``json`` marks JSON-text strings). */
    static Object avro(Schema schema, JsonNode node, boolean json) throws Exception {
        switch (schema.getType()) {
            case NULL:
                return null;
            case UNION:
                if (node == null || node.isNull()) {
                    if (schema.getTypes().get(0).getType() == Schema.Type.NULL) return null;
                }
                for (Schema branch : schema.getTypes()) {
                    if (branch.getType() != Schema.Type.NULL) return avro(branch, node, json);
                }
                throw new IllegalArgumentException("no branch for " + node);
            case STRING:
                if (json) return JSON.writeValueAsString(node);
                return node.asText();
            case BOOLEAN:
                return node.asBoolean();
            case INT:
                return node.asInt();
            case LONG:
                return node.asLong();
            case DOUBLE:
                return node.asDouble();
            case BYTES:
                return ByteBuffer.wrap(Base64.getDecoder().decode(node.asText()));
            case ENUM:
                return new GenericData.EnumSymbol(schema, node.asText());
            case ARRAY: {
                List<Object> out = new ArrayList<>();
                for (JsonNode item : node) out.add(avro(schema.getElementType(), item, false));
                return out;
            }
            case MAP: {
                Map<String, Object> out = new LinkedHashMap<>();
                var it = node.fields();
                while (it.hasNext()) {
                    var e = it.next();
                    out.put(e.getKey(), avro(schema.getValueType(), e.getValue(), false));
                }
                return out;
            }
            case RECORD: {
                GenericRecordBuilder b = new GenericRecordBuilder(schema);
                for (Schema.Field f : schema.getFields()) {
                    JsonNode v = node == null ? null : node.get(f.name());
                    if (v == null) continue; // the schema's default
                    boolean isJson = "application/json".equals(f.getProp("contentType"));
                    b.set(f, avro(f.schema(), v, isJson));
                }
                return b.build();
            }
            default:
                throw new IllegalArgumentException("unsupported Avro type " + schema.getType());
        }
    }

    static String text(JsonNode node, String field) {
        JsonNode v = node.get(field);
        return v == null || v.isNull() ? null : v.asText();
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println(
                    "usage: ForeignProducer BOOTSTRAP SCHEMAS_DIR RUN_TOPIC SESSION_TOPIC MEMORY_TOPIC");
            System.exit(2);
        }
        Map<String, Schema> schemas = newestSchemas(new File(args[1]));
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, "lz4");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        // No partitioner.class: the default for keyed records is murmur2, the contract's.

        List<String> ids = new ArrayList<>();
        List<Future<RecordMetadata>> sent = new ArrayList<>();
        List<String> types = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props);
                BufferedReader in = new BufferedReader(
                        new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null) {
                if (line.isBlank()) continue;
                JsonNode plan = JSON.readTree(line);
                String type = plan.get("type").asText();
                Schema schema = schemas.get(type);
                if (schema == null) throw new IllegalArgumentException("no schema for " + type);
                JsonNode envelope = plan.has("envelope") ? plan.get("envelope") : JSON.createObjectNode();
                JsonNode payload = plan.has("payload") ? plan.get("payload") : JSON.createObjectNode();

                String eventId = uuid7();
                long now = System.currentTimeMillis();
                ObjectNode full = ((ObjectNode) envelope.deepCopy());
                full.put("event_id", eventId);
                full.put("type", type);
                full.put("occurred_at", now);
                full.put("producer", PRODUCER);
                if (plan.has("caused_by")) full.put("causation_id", ids.get(plan.get("caused_by").asInt()));
                full.set("payload", payload);
                GenericRecord record = (GenericRecord) avro(schema, full, false);

                String topic;
                byte[] key;
                if (type.startsWith("memory_")) {
                    topic = args[4];
                    // Compact JSON, non-ASCII as UTF-8, control characters in lowercase hex.
                    key = JSON.writeValueAsBytes(Arrays.asList(
                            text(payload, "scope"), text(payload, "owner"), text(payload, "key")));
                } else if (type.startsWith("session_")) {
                    topic = args[3];
                    key = text(envelope, "session_id").getBytes(StandardCharsets.UTF_8);
                } else {
                    topic = args[2];
                    key = text(envelope, "run_id").getBytes(StandardCharsets.UTF_8);
                }

                ProducerRecord<byte[], byte[]> out;
                if (type.equals("memory_deleted")) {
                    out = new ProducerRecord<>(topic, key, null);
                    out.headers().add("runwire-occurred-at", Long.toString(now).getBytes(StandardCharsets.UTF_8));
                    out.headers().add("runwire-producer", PRODUCER.getBytes(StandardCharsets.UTF_8));
                } else {
                    BinaryMessageEncoder<GenericRecord> encoder =
                            new BinaryMessageEncoder<>(GenericData.get(), schema);
                    ByteBuffer framed = encoder.encode(record);
                    byte[] value = new byte[framed.remaining()];
                    framed.get(value);
                    out = new ProducerRecord<>(topic, key, value);
                    // The 8 fingerprint bytes as they follow C3 01 (little-endian).
                    long fp = SchemaNormalization.parsingFingerprint64(schema);
                    byte[] le = ByteBuffer.allocate(8)
                            .order(java.nio.ByteOrder.LITTLE_ENDIAN).putLong(fp).array();
                    out.headers().add("runwire-schema",
                            HexFormat.of().formatHex(le).getBytes(StandardCharsets.UTF_8));
                }
                out.headers().add("runwire-type", type.getBytes(StandardCharsets.UTF_8));
                out.headers().add("runwire-event-id", eventId.getBytes(StandardCharsets.UTF_8));
                ids.add(eventId);
                types.add(type);
                sent.add(producer.send(out));
            }
            producer.flush();
            for (int i = 0; i < sent.size(); i++) {
                RecordMetadata m = sent.get(i).get();
                ObjectNode report = JSON.createObjectNode();
                report.put("event_id", ids.get(i));
                report.put("type", types.get(i));
                report.put("topic", m.topic());
                report.put("partition", m.partition());
                report.put("offset", m.offset());
                System.out.println(JSON.writeValueAsString(report));
            }
        }
    }
}
