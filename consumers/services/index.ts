export { derivedUuid } from "./derived-id.js";
export type { Fulfilled, FulfillmentOptions } from "./fulfillment.js";
export { runFulfillment } from "./fulfillment.js";
export type { NotificationsOptions, SentNotification } from "./notifications.js";
export { runNotifications } from "./notifications.js";
export type { RunningService, ServiceOptions } from "./service-options.js";
