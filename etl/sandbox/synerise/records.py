"""Profiles, transactions and events: validation against Synerise's rules, identity resolution,
and ``eventSalt`` overwrites."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from etl.sandbox.synerise import rules
from etl.sandbox.synerise.rules import FieldError
from etl.sandbox.synerise.workspace import (
    MAX_BATCH_ITEMS,
    MAX_SINGLE_BYTES,
    PRODUCT_EVENT_NAMESPACE,
    Doc,
    SyneriseWorkspace,
    now_iso,
)


class SyneriseRecords(SyneriseWorkspace):
    """The ``/v4`` data routes of a workspace."""

    PROSE_RULES = {
        "synerise.clients_batch": rules.profile_prose_errors,
        "synerise.clients_create": rules.profile_prose_errors,
        "synerise.transactions_batch": rules.transaction_prose_errors,
        "synerise.transactions": rules.transaction_prose_errors,
    }

    def _check_profile(self, item: Any, path: str) -> tuple[list[FieldError], Any]:
        return rules.validate_profile(item, path), item

    def _upsert_profile(self, item: Doc) -> None:
        profiles = self.profiles
        client_id = profiles.resolve(item)
        now = now_iso()
        if client_id is None:
            if not any(isinstance(item.get(n), str) for n in rules.PROFILE_IDENTIFIERS):
                self.counters["ignored_items"] += 1  # clientId-only update of an unknown profile
                return
            client_id = profiles.new_id()
            profiles.docs[client_id] = {"clientId": client_id, "created": now}
        doc = profiles.docs[client_id]
        for name in (*rules.PROFILE_IDENTIFIERS, *rules.PROFILE_TEXT_FIELDS, "birthDate", "sex"):
            if name not in item:
                continue
            old, new = doc.get(name), item[name]
            if new is None:
                doc.pop(name, None)
            else:
                doc[name] = new
            if (
                name in profiles.INDEXED
                and old != new
                and profiles.reindex(client_id, name, old, new)
            ):
                self.counters["identity_conflicts"] += 1
        if "tags" in item:
            if item["tags"] is None:
                doc.pop("tags", None)
            else:
                doc["tags"] = list(item["tags"])
        if "agreements" in item:
            agreements = doc.setdefault("agreements", {})
            if item["agreements"] is None:
                agreements.clear()
            else:
                for key, flag in item["agreements"].items():
                    value = rules.agreement_value(flag)
                    if value is None:
                        agreements.pop(key, None)
                    else:
                        agreements[key] = value
        if "attributes" in item:
            attributes = doc.setdefault("attributes", {})
            if item["attributes"] is None:
                attributes.clear()
            else:
                for name, value in item["attributes"].items():
                    if name in rules.RESERVED_ATTRIBUTES:
                        continue
                    if value is None:
                        attributes.pop(name, None)
                    else:
                        attributes[name] = value
        doc["updated"] = now

    async def clients_batch(self, request: web.Request) -> web.Response:
        return await self._batch(
            request,
            "synerise.clients_batch",
            MAX_BATCH_ITEMS,
            self.max_batch_bytes,
            self._check_profile,
            self._upsert_profile,
        )

    async def clients_create(self, request: web.Request) -> web.Response:
        return await self._single(
            request, MAX_SINGLE_BYTES, self._check_profile, self._upsert_profile
        )

    async def client_delete(self, request: web.Request) -> web.Response:
        problem = self._authenticate(request)
        if problem is not None:
            return problem
        custom_id = request.match_info["customId"]
        client_id = self.profiles.find("customId", custom_id)
        if client_id is None:
            return self.error(request, 404, "Not Found", "Profile not found")
        self.profiles.delete(client_id)
        return web.Response(status=200)

    def _same_client(self, a: Doc, b: Doc) -> bool:
        found_a, found_b = self.profiles.resolve(a), self.profiles.resolve(b)
        if found_a is not None and found_b is not None:
            return found_a == found_b
        for name in ("customId", "email", "uuid", "id"):
            value_a, value_b = a.get(name), b.get(name)
            if value_a is None or value_b is None:
                continue
            if name == "email" and isinstance(value_a, str) and isinstance(value_b, str):
                return value_a.lower() == value_b.lower()
            return bool(value_a == value_b)
        return False

    def _check_transaction(self, item: Any, path: str) -> tuple[list[FieldError], Any]:
        errors, moment = rules.validate_transaction(item, path, datetime.now(UTC))
        return errors, (item, moment)

    def _store_transaction(self, prepared: tuple[Doc, datetime]) -> None:
        item, moment = prepared
        when = rules.time_key(moment)
        salt = item.get("eventSalt")
        previous: Doc | None = None
        if salt is not None:
            for txn_id in self._txn_by_salt.get(salt, ()):
                candidate = self.transactions[txn_id]
                meta = candidate["_sandbox"]
                if meta["recordedAtMs"] == when and self._same_client(
                    candidate["client"], item["client"]
                ):
                    previous = candidate
                    break
        doc = dict(item)
        doc["recordedAt"] = rules.format_time(moment)
        received = now_iso()
        if previous is not None:
            old = previous["_sandbox"]
            meta = {**old, "updatedAt": received, "overwrites": old["overwrites"] + 1}
            self.counters["transactions_overwritten"] += 1
        else:
            txn_id = next(self._txn_ids)
            meta = {
                "id": txn_id,
                "eventUUID": str(uuid.uuid4()),
                "receivedAt": received,
                "updatedAt": received,
                "recordedAtMs": when,
                "overwrites": 0,
            }
            if self._orders[item["orderId"]]:
                self.counters["duplicate_transactions"] += 1
            self._orders[item["orderId"]] += 1
            if salt is not None:
                self._txn_by_salt.setdefault(salt, []).append(txn_id)
        meta["clientId"] = self.profiles.resolve(item["client"])
        doc["_sandbox"] = meta
        self.transactions[meta["id"]] = doc
        self._transaction_events(doc)

    def _transaction_events(self, txn: Doc) -> None:
        """``transaction.charge`` + one ``product.buy`` per line; UUIDs by position (§3.3)."""
        meta = txn["_sandbox"]
        charge_uuid = meta["eventUUID"]
        line_uuids = [
            str(uuid.uuid5(PRODUCT_EVENT_NAMESPACE, f"{charge_uuid}:{i}"))
            for i in range(len(txn["products"]))
        ]
        source = {"transactionId": meta["id"], "eventSalt": txn.get("eventSalt")}
        revenue = txn["revenue"]
        self._put_event(
            charge_uuid,
            {
                "action": "transaction.charge",
                "label": "transaction.charge",
                "client": txn["client"],
                "time": txn["recordedAt"],
                "params": {
                    "$orderId": txn["orderId"],
                    "$revenue": revenue["amount"],
                    "$totalAmount": txn["value"]["amount"],
                    "$currency": revenue["currency"],
                    "$paymentType": (txn.get("paymentInfo") or {}).get("method"),
                    "productEventsUUIDs": line_uuids,
                },
                "_sandbox": source,
            },
        )
        for line_uuid, product in zip(line_uuids, txn["products"], strict=True):
            self._put_event(
                line_uuid,
                {
                    "action": "product.buy",
                    "label": "product.buy",
                    "client": txn["client"],
                    "time": txn["recordedAt"],
                    "params": {
                        "$orderId": txn["orderId"],
                        "sku": product["sku"],
                        "name": product["name"],
                        "$finalUnitPrice": product["finalUnitPrice"],
                        "$quantity": product.get("quantity", 1),
                    },
                    "_sandbox": source,
                },
            )

    def _put_event(self, event_uuid: str, doc: Doc) -> None:
        doc["eventUUID"] = event_uuid
        if event_uuid in self.events:
            self.counters["events_overwritten"] += 1
        else:
            self._events_by_action[doc["action"]] += 1
        self.events[event_uuid] = doc

    async def transactions_single(self, request: web.Request) -> web.Response:
        return await self._single(
            request,
            self.transactions_batch_max_bytes,
            self._check_transaction,
            self._store_transaction,
        )

    async def transactions_batch(self, request: web.Request) -> web.Response:
        return await self._batch(
            request,
            "synerise.transactions_batch",
            self.transactions_batch_max_items,
            self.transactions_batch_max_bytes,
            self._check_transaction,
            self._store_transaction,
        )

    def _check_event(self, item: Any, path: str) -> tuple[list[FieldError], Any]:
        errors, moment = rules.validate_event(item, path, datetime.now(UTC))
        return errors, (item, moment)

    def _store_event(self, prepared: tuple[Doc, datetime]) -> None:
        item, moment = prepared
        when = rules.time_key(moment)
        salt, action = item.get("eventSalt"), item["action"]
        event_uuid: str | None = None
        if salt is not None:
            for candidate_uuid in self._events_by_salt.get((salt, action), ()):
                candidate = self.events[candidate_uuid]
                if candidate["_sandbox"]["timeMs"] == when and self._same_client(
                    candidate["client"], item["client"]
                ):
                    event_uuid = candidate_uuid
                    break
        if event_uuid is None:
            event_uuid = str(uuid.uuid4())
            if salt is not None:
                self._events_by_salt.setdefault((salt, action), []).append(event_uuid)
        doc = {
            "action": action,
            "label": item["label"],
            "client": item["client"],
            "time": rules.format_time(moment),
            "params": item.get("params") or {},
            "eventSalt": salt,
            "_sandbox": {
                "source": "event",
                "timeMs": when,
                "clientId": self.profiles.resolve(item["client"]),
                "receivedAt": now_iso(),
            },
        }
        self._put_event(event_uuid, doc)

    async def events_batch(self, request: web.Request) -> web.Response:
        return await self._batch(
            request,
            "synerise.events_batch",
            MAX_BATCH_ITEMS,
            self.max_batch_bytes,
            self._check_event,
            self._store_event,
        )

    async def events_custom(self, request: web.Request) -> web.Response:
        return await self._single(request, MAX_SINGLE_BYTES, self._check_event, self._store_event)
