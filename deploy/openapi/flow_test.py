"""A whole shop flow driven only through a client generated from the OpenAPI document.

    flow_test.py flow URL ADMIN_TOKEN         # the flow, against a binary with anonymous budgets off
    flow_test.py rate-limit URL ADMIN_TOKEN   # 429 against a binary with a tiny user budget

The generated client raises on any status the document does not declare, and parses every
body with the model the document names for that status: if the document and the server
disagree on a status, a field, a type, an enum value or a required/nullable flag, this fails.
Every mismatch is fatal (non-zero exit).
"""

import datetime
import sys
import time
from http import HTTPStatus

from shop_client import AuthenticatedClient, Client
from shop_client.api.admin import list_outbox_events
from shop_client.api.balance import charge_balance, get_balance, list_balance_transactions
from shop_client.api.coupons import create_coupon, get_coupon, issue_coupon, list_coupons, list_my_coupons
from shop_client.api.operations import get_liveness, get_readiness
from shop_client.api.orders import cancel_order, get_order, list_orders, place_order
from shop_client.api.payments import get_payment, pay_order
from shop_client.api.products import (
    adjust_product_stock,
    create_product,
    get_product,
    list_popular_products,
    list_product_stock_ledger,
    list_products,
    update_product,
)
from shop_client.api.users import get_me, get_user, roll_my_token, sign_up
from shop_client.models import (
    BalanceDto,
    ChargeDto,
    ChargeRequest,
    CouponDto,
    CouponIssueDto,
    CouponList,
    CreateCouponRequest,
    CreateProductRequest,
    DiscountTypeDto,
    HeldCouponList,
    IssuedTokenDto,
    LedgerPage,
    LiveDto,
    OrderDto,
    OrderLineRequest,
    OrderPage,
    OrderStatusDto,
    OutboxPage,
    PayRequest,
    PaymentDto,
    PlaceOrderRequest,
    PopularDto,
    Problem,
    ProductDto,
    ProductPage,
    ReadyDto,
    RoleDto,
    SignUpRequest,
    SignedUpDto,
    StockAdjustmentRequest,
    TransactionPage,
    TransactionTypeDto,
    UpdateProductRequest,
    UserDto,
)
from shop_client.types import UNSET


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def expect(response, status, model, what):
    """The answer has `status`, a body parsed as `model`, and the request id header."""
    check(
        response.status_code == status,
        f"{what}: status {response.status_code}, expected {status}: {response.content!r}",
    )
    check(
        isinstance(response.parsed, model),
        f"{what}: parsed as {type(response.parsed).__name__}, expected {model.__name__}",
    )
    check(response.headers.get("x-request-id"), f"{what}: no X-Request-Id")
    return response.parsed


def problem(response, status, code, what):
    body = expect(response, status, Problem, what)
    check(body.code == code, f"{what}: code {body.code}, expected {code}")
    check(body.status == int(status), f"{what}: body status {body.status}")
    return body


def clients(url, token):
    strict = {"raise_on_unexpected_status": True, "timeout": 10.0}
    return Client(base_url=url, **strict), lambda t: AuthenticatedClient(base_url=url, token=t, **strict)


def flow(url, admin_token):
    anonymous, as_user = clients(url, admin_token)
    admin = as_user(admin_token)

    expect(get_liveness.sync_detailed(client=anonymous), HTTPStatus.OK, LiveDto, "live")
    expect(get_readiness.sync_detailed(client=anonymous), HTTPStatus.OK, ReadyDto, "ready")

    # An admin creates a seller (keyed: the answer carries the token); a buyer signs up alone.
    seller_up = sign_up.sync_detailed(
        client=admin,
        body=SignUpRequest(name="Seller Kim", role=RoleDto.SELLER),
        idempotency_key="openapi-seller-1",
    )
    seller_user = expect(seller_up, HTTPStatus.CREATED, SignedUpDto, "seller sign-up")
    check(seller_user.role == RoleDto.SELLER, "seller role")
    buyer_user = expect(
        sign_up.sync_detailed(client=anonymous, body=SignUpRequest(name="  Buyer Lee  ")),
        HTTPStatus.CREATED,
        SignedUpDto,
        "buyer sign-up",
    )
    check(buyer_user.name == "Buyer Lee", f"the name is trimmed: {buyer_user.name!r}")
    problem(
        sign_up.sync_detailed(client=anonymous, body=SignUpRequest(name="x", role=RoleDto.ADMIN)),
        HTTPStatus.FORBIDDEN,
        "FORBIDDEN",
        "anonymous admin sign-up",
    )
    seller, buyer = as_user(seller_user.token), as_user(buyer_user.token)
    me = expect(get_me.sync_detailed(client=buyer), HTTPStatus.OK, UserDto, "me")
    check(me.id == buyer_user.id, "me is the buyer")
    expect(get_user.sync_detailed(buyer_user.id, client=admin), HTTPStatus.OK, UserDto, "admin reads the buyer")
    problem(get_user.sync_detailed(seller_user.id, client=buyer), HTTPStatus.NOT_FOUND, "NOT_FOUND", "another user")
    problem(get_me.sync_detailed(client=as_user("not-a-token")), HTTPStatus.UNAUTHORIZED, "UNAUTHENTICATED", "bad token")

    # The seller lists a product, moves its stock, renames it, and publishes a coupon.
    product = expect(
        create_product.sync_detailed(
            client=seller,
            body=CreateProductRequest(name="Green tea", price=12000, stock=5),
            idempotency_key="openapi-product-1",
        ),
        HTTPStatus.CREATED,
        ProductDto,
        "create product",
    )
    product = expect(
        adjust_product_stock.sync_detailed(
            product.id, client=seller, body=StockAdjustmentRequest(delta=5, note="restock")
        ),
        HTTPStatus.OK,
        ProductDto,
        "adjust stock",
    )
    check(product.stock == 10, f"stock {product.stock}")
    product = expect(
        update_product.sync_detailed(product.id, client=seller, body=UpdateProductRequest(name="Green tea 2")),
        HTTPStatus.OK,
        ProductDto,
        "update product",
    )
    ledger = expect(
        list_product_stock_ledger.sync_detailed(product.id, client=seller, limit=10), HTTPStatus.OK, LedgerPage, "ledger"
    )
    check([e.delta for e in ledger.items] == [5, 5], f"ledger {ledger.items}")
    check(ledger.items[1].note is None and ledger.next_cursor is None, "absent values are null")
    problem(
        create_product.sync_detailed(client=buyer, body=CreateProductRequest(name="x", price=1, stock=1)),
        HTTPStatus.FORBIDDEN,
        "FORBIDDEN",
        "a buyer lists a product",
    )
    invalid = problem(
        create_product.sync_detailed(client=seller, body=CreateProductRequest(name="x", price=0, stock=-1)),
        HTTPStatus.BAD_REQUEST,
        "VALIDATION_FAILED",
        "price and stock out of range",
    )
    check({e.field for e in invalid.errors} == {"price", "stock"}, f"fields {invalid.errors}")
    page = expect(list_products.sync_detailed(client=anonymous, page=1, size=100), HTTPStatus.OK, ProductPage, "products")
    check(any(p.id == product.id for p in page.items), "the product is listed")
    expect(get_product.sync_detailed(product.id, client=anonymous), HTTPStatus.OK, ProductDto, "get product")

    now = datetime.datetime.now(datetime.timezone.utc)
    coupon = expect(
        create_coupon.sync_detailed(
            client=seller,
            body=CreateCouponRequest(
                name="Drop",
                discount_type=DiscountTypeDto.AMOUNT,
                amount=1000,
                total_quantity=10,
                starts_at=now - datetime.timedelta(minutes=1),
                expires_at=now + datetime.timedelta(hours=1),
            ),
        ),
        HTTPStatus.CREATED,
        CouponDto,
        "create coupon",
    )
    check(coupon.percent is None and coupon.max_discount is None, "unset discount fields are null")
    expect(get_coupon.sync_detailed(coupon.id, client=buyer), HTTPStatus.OK, CouponDto, "get coupon")
    active = expect(list_coupons.sync_detailed(client=buyer), HTTPStatus.OK, CouponList, "coupons")
    check(any(c.id == coupon.id for c in active.items), "the coupon is active")

    # The buyer charges the wallet with a key; the retry is the first answer, marked.
    charge = lambda: charge_balance.sync_detailed(  # noqa: E731
        client=buyer, body=ChargeRequest(amount=50000), idempotency_key="openapi-charge-1"
    )
    first = expect(charge(), HTTPStatus.OK, ChargeDto, "charge")
    check(first.balance == 50000 and first.transaction.type_ == TransactionTypeDto.CHARGE, "charged")
    check(first.transaction.order_id is None, "a charge has no order")
    again = charge()
    replay = expect(again, HTTPStatus.OK, ChargeDto, "charge replay")
    check(again.headers.get("idempotent-replayed") == "true", "replay marker")
    check(replay.transaction.id == first.transaction.id, "the replay is the first answer")
    problem(
        charge_balance.sync_detailed(client=buyer, body=ChargeRequest(amount=1), idempotency_key="openapi-charge-1"),
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "IDEMPOTENCY_KEY_REUSED",
        "same key, other body",
    )
    problem(
        charge_balance.sync_detailed(client=buyer, body=ChargeRequest(amount=0)),
        HTTPStatus.BAD_REQUEST,
        "INVALID_AMOUNT",
        "charge below the minimum",
    )
    problem(
        charge_balance.sync_detailed(client=buyer, body=ChargeRequest(amount=10_000_000)),
        HTTPStatus.CONFLICT,
        "BALANCE_LIMIT_EXCEEDED",
        "charge over the maximum balance",
    )
    expect(get_balance.sync_detailed(client=buyer), HTTPStatus.OK, BalanceDto, "balance")

    # The buyer grabs the coupon, orders with it, pays; a second payment is refused.
    issued = expect(issue_coupon.sync_detailed(coupon.id, client=buyer), HTTPStatus.CREATED, CouponIssueDto, "issue")
    check(issued.used_at is None and issued.order_id is None, "a fresh issue is unused")
    problem(
        issue_coupon.sync_detailed(coupon.id, client=buyer),
        HTTPStatus.CONFLICT,
        "COUPON_ALREADY_ISSUED",
        "second issue",
    )
    held = expect(list_my_coupons.sync_detailed(client=buyer), HTTPStatus.OK, HeldCouponList, "my coupons")
    check([h.id for h in held.items] == [issued.id], "the held coupon")
    order = expect(
        place_order.sync_detailed(
            client=buyer,
            body=PlaceOrderRequest(
                items=[OrderLineRequest(product_id=product.id, quantity=2)], coupon_issue_id=issued.id
            ),
            idempotency_key="openapi-order-1",
        ),
        HTTPStatus.CREATED,
        OrderDto,
        "place order",
    )
    check((order.subtotal, order.discount, order.total_amount) == (24000, 1000, 23000), "prices")
    check(order.paid_at is None and order.canceled_at is None, "an unpaid order")
    problem(
        place_order.sync_detailed(client=buyer, body=PlaceOrderRequest(items=[])),
        HTTPStatus.BAD_REQUEST,
        "VALIDATION_FAILED",
        "an empty order",
    )
    payment = expect(
        pay_order.sync_detailed(client=buyer, body=PayRequest(order_id=order.id), idempotency_key="openapi-pay-1"),
        HTTPStatus.CREATED,
        PaymentDto,
        "pay",
    )
    check(payment.amount == 23000, "paid the total")
    problem(
        pay_order.sync_detailed(client=buyer, body=PayRequest(order_id=order.id)),
        HTTPStatus.CONFLICT,
        "ORDER_NOT_PAYABLE",
        "second payment",
    )
    expect(get_payment.sync_detailed(payment.id, client=buyer), HTTPStatus.OK, PaymentDto, "get payment")
    orders = expect(list_orders.sync_detailed(client=buyer, limit=5), HTTPStatus.OK, OrderPage, "orders")
    check([o.status for o in orders.items] == [OrderStatusDto.PAID], f"orders {orders.items}")

    # Refund, then a second order that stays paid: it shows in the ranking.
    refunded = expect(cancel_order.sync_detailed(order.id, client=buyer), HTTPStatus.OK, OrderDto, "cancel")
    check(refunded.status == OrderStatusDto.REFUNDED and refunded.canceled_at is not None, "refunded")
    problem(
        cancel_order.sync_detailed(order.id, client=buyer),
        HTTPStatus.CONFLICT,
        "INVALID_ORDER_STATE",
        "second cancel",
    )
    second = expect(
        place_order.sync_detailed(
            client=buyer, body=PlaceOrderRequest(items=[OrderLineRequest(product_id=product.id, quantity=3)])
        ),
        HTTPStatus.CREATED,
        OrderDto,
        "second order",
    )
    expect(pay_order.sync_detailed(client=buyer, body=PayRequest(order_id=second.id)), HTTPStatus.CREATED, PaymentDto, "pay 2")
    expect(get_order.sync_detailed(second.id, client=buyer), HTTPStatus.OK, OrderDto, "get order")
    history = expect(list_balance_transactions.sync_detailed(client=buyer), HTTPStatus.OK, TransactionPage, "transactions")
    check(
        [t.type_ for t in history.items]
        == [TransactionTypeDto.PAYMENT, TransactionTypeDto.REFUND, TransactionTypeDto.PAYMENT, TransactionTypeDto.CHARGE],
        f"history {[t.type_ for t in history.items]}",
    )
    deadline = time.monotonic() + 5
    while True:
        popular = expect(
            list_popular_products.sync_detailed(client=anonymous, days=1, limit=5), HTTPStatus.OK, PopularDto, "popular"
        )
        ranked = [(i.product_id, i.sold_quantity) for i in popular.items]
        if ranked == [(product.id, 3)]:
            break
        check(time.monotonic() < deadline, f"ranking {ranked}")
        time.sleep(0.2)

    # A rolled token replaces the old one; the admin reads the outbox.
    rolled = expect(roll_my_token.sync_detailed(client=buyer), HTTPStatus.CREATED, IssuedTokenDto, "roll token")
    problem(get_me.sync_detailed(client=buyer), HTTPStatus.UNAUTHORIZED, "UNAUTHENTICATED", "the old token")
    buyer = as_user(rolled.token)
    expect(get_me.sync_detailed(client=buyer), HTTPStatus.OK, UserDto, "the new token")
    outbox = expect(list_outbox_events.sync_detailed(client=admin, limit=100), HTTPStatus.OK, OutboxPage, "outbox")
    check(len(outbox.items) >= 3, f"outbox events {len(outbox.items)}")
    problem(list_outbox_events.sync_detailed(client=buyer), HTTPStatus.FORBIDDEN, "FORBIDDEN", "a buyer's outbox")
    check(invalid.errors is not UNSET, "validation problems list their fields")
    print("flow: OK")


def rate_limit(url, admin_token):
    _, as_user = clients(url, admin_token)
    admin = as_user(admin_token)
    for attempt in range(20):
        response = get_me.sync_detailed(client=admin)
        if response.status_code == HTTPStatus.TOO_MANY_REQUESTS:
            problem(response, HTTPStatus.TOO_MANY_REQUESTS, "RATE_LIMITED", "over budget")
            retry_after = int(response.headers["retry-after"])
            check(retry_after >= 1, f"Retry-After {retry_after}")
            print(f"rate-limit: 429 RATE_LIMITED after {attempt} requests, Retry-After {retry_after}: OK")
            return
        expect(response, HTTPStatus.OK, UserDto, "within budget")
    raise AssertionError("no 429 within 20 requests")


def main():
    mode, url, admin_token = sys.argv[1:4]
    {"flow": flow, "rate-limit": rate_limit}[mode](url, admin_token)


if __name__ == "__main__":
    main()
