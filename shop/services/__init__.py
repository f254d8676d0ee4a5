"""The only code that writes a sale: its definition and life (sales), its stock shards in
PostgreSQL (shards), and the sale in Redis kept to the database (redis_sync)."""

from shop.services.redis_sync import (
    flash_sale_drifts_notify,
    flash_sale_preheat,
    flash_sale_reconcile,
    flash_sale_should_be_loaded,
    flash_sales_block_account,
)
from shop.services.sales import (
    WAITING_ROOM_TERMS,
    WAVE_TERMS,
    flash_sale_cancel,
    flash_sale_close,
    flash_sale_create,
    flash_sale_edit,
    flash_sale_go_live,
    flash_sale_waiting_room_check,
    flash_sale_waves_check,
)
from shop.services.shards import flash_sale_shard_waves, flash_sale_shards_create, flash_sale_shards_rebalance

__all__ = [
    "WAITING_ROOM_TERMS", "WAVE_TERMS", "flash_sale_cancel", "flash_sale_close", "flash_sale_create",
    "flash_sale_drifts_notify", "flash_sale_edit", "flash_sale_go_live", "flash_sale_preheat", "flash_sale_reconcile",
    "flash_sale_shard_waves", "flash_sale_shards_create", "flash_sale_shards_rebalance", "flash_sale_should_be_loaded",
    "flash_sale_waiting_room_check", "flash_sale_waves_check", "flash_sales_block_account",
]  # fmt: skip
