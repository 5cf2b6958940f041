"""Networks, one module each (configs/model/ names them by `_target_`), and the LightningModule
that trains any of them (`classifier`)."""
