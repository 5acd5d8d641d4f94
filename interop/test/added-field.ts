import { clone, create, createFileRegistry, type DescMessage } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FieldDescriptorProtoSchema,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import { getCatalog } from "@jetkit/contracts";

/**
 * The field a later contract version adds to OrderFulfillmentCompleted:
 * `string delivery_note = 6;` (the next free number). The real contracts are not touched.
 */
export const ADDED = { name: "delivery_note", number: 6, jsonName: "deliveryNote" } as const;

/** `payload` as the new contract version encodes it: the old fields, then delivery_note. */
export function withDeliveryNote(payload: Uint8Array, note: string): Uint8Array {
  const text = new TextEncoder().encode(note);
  if (text.length > 127) throw new Error("keep the note under 128 bytes (one-byte length)");
  return Uint8Array.from([...payload, (ADDED.number << 3) | 2, text.length, ...text]);
}

/**
 * OrderFulfillmentCompleted as the new contract version declares it: the contract file from the
 * buf image with delivery_note added, built at test time (what a consumer regenerated from the
 * new contract decodes with).
 */
export function newOrderFulfillmentCompleted(): DescMessage {
  const catalog = getCatalog();
  const spec = catalog.byType("shop.order.v1.OrderFulfillmentCompleted");
  const file = clone(FileDescriptorProtoSchema, spec.schema.file.proto);
  const msg = file.messageType.find((m) => m.name === "OrderFulfillmentCompleted");
  if (!msg) throw new Error("OrderFulfillmentCompleted is not in its file");
  msg.field.push(
    create(FieldDescriptorProtoSchema, {
      name: ADDED.name,
      number: ADDED.number,
      jsonName: ADDED.jsonName,
      type: FieldDescriptorProto_Type.STRING,
      label: FieldDescriptorProto_Label.OPTIONAL,
    }),
  );
  const registry = createFileRegistry(file, (name) => catalog.registry.getFile(name));
  const schema = registry.getMessage("shop.order.v1.OrderFulfillmentCompleted");
  if (!schema) throw new Error("the new OrderFulfillmentCompleted did not build");
  return schema;
}
