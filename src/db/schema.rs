// The tables of migrations/{sqlite,postgres}, in `diesel print-schema` form.

diesel::table! {
    instances (id) {
        id -> Text,
        name -> Text,
        base_url -> Text,
        client_id -> Text,
        client_secret_sealed -> Binary,
        ca_pem -> Nullable<Text>,
        scopes -> Text,
        discovery -> Text,
        last_check_ok -> Bool,
        last_check_report -> Text,
        last_checked_at -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    labgate_meta (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(instances, labgate_meta);
