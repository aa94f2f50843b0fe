//! The shapes of Microsoft Graph requests and responses, as serde types and
//! nothing else, so the wire format is in one place and the rest of the
//! module works with typed values. Field names follow Graph's camelCase.
//! (Entra ID's token endpoint is [`crate::oauth::entra`]'s.)

use serde::{Deserialize, Serialize};

// --- Errors ------------------------------------------------------------------

/// Graph's error body: `{"error":{"code":"ErrorFolderExists","message":"..."}}`.
#[derive(Deserialize, Default)]
pub struct ErrorBody {
    #[serde(default)]
    pub error: ErrorDetail,
}

#[derive(Deserialize, Default)]
pub struct ErrorDetail {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

// --- Folders -----------------------------------------------------------------

/// One page of `mailFolders` or `childFolders`.
#[derive(Deserialize)]
pub struct FolderPage {
    #[serde(default)]
    pub value: Vec<Folder>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Folder {
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    /// Only when asked for with `$select` (a rename compares it).
    #[serde(default)]
    pub parent_folder_id: Option<String>,
}

/// `PATCH /mailFolders/{id}`: `displayName` is the one property a folder
/// update takes.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FolderRename<'a> {
    pub display_name: &'a str,
}

/// `POST /messages/{id}/move` and `POST /mailFolders/{id}/move`: a folder
/// id or a well-known folder name.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveTo<'a> {
    pub destination_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewFolder<'a> {
    pub display_name: &'a str,
    pub is_hidden: bool,
}

// --- Outlook's master category list -----------------------------------------

/// One page of `GET /users/{id}/outlook/masterCategories`.
#[derive(Deserialize)]
pub struct CategoryPage {
    #[serde(default)]
    pub value: Vec<Category>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
}

/// An outlookCategory as the list shows it (its colour is the user's and
/// never read or changed).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Category {
    #[serde(default)]
    pub display_name: String,
}

/// `POST /users/{id}/outlook/masterCategories`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewCategory<'a> {
    pub display_name: &'a str,
    /// A categoryColor: `preset0` … `preset24`.
    pub color: &'a str,
}

// --- Messages ----------------------------------------------------------------

/// What we read back from a created message: its id and the state the
/// migration must keep (read, flag, categories).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedMessage {
    pub id: String,
    pub is_read: Option<bool>,
    pub flag: Option<FollowupFlag>,
    pub categories: Option<Vec<String>>,
    pub received_date_time: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FollowupFlag {
    /// "notFlagged", "flagged" or "complete".
    pub flag_status: String,
}

#[derive(Deserialize)]
pub struct IdOnly {
    pub id: String,
}

/// A page of messages as a lookup or an inventory reads them: the id,
/// the Message-ID and the extended properties asked for with `$expand`.
#[derive(Deserialize)]
pub struct MessagePage {
    #[serde(default)]
    pub value: Vec<ListedMessage>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedMessage {
    pub id: String,
    #[serde(default)]
    pub internet_message_id: Option<String>,
    /// Only when asked for with `$select` (a lookup compares it).
    #[serde(default)]
    pub subject: Option<String>,
    /// Only when asked for with `$select` (an inventory reports them).
    #[serde(default)]
    pub is_read: Option<bool>,
    #[serde(default)]
    pub flag: Option<FollowupFlag>,
    #[serde(default)]
    pub single_value_extended_properties: Vec<PropertyValue>,
}

impl ListedMessage {
    /// The value of extended property `id` (compared ignoring case, since
    /// Graph echoes ids in its own spelling, e.g. `Integer 0xe08`).
    pub fn property(&self, id: &str) -> Option<&str> {
        self.single_value_extended_properties
            .iter()
            .find(|p| same_property(&p.id, id))
            .map(|p| p.value.as_str())
    }
}

/// Whether two extended property ids name the same property: Graph may
/// echo `Integer 0x0E08` as `Integer 0xe08`, and GUIDs in either case.
pub fn same_property(a: &str, b: &str) -> bool {
    fn norm(id: &str) -> String {
        id.split_whitespace()
            .map(|w| match w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
                Some(hex) => match u32::from_str_radix(hex, 16) {
                    Ok(n) => format!("0x{n:x}"),
                    Err(_) => w.to_ascii_lowercase(),
                },
                None => w.to_ascii_lowercase(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
    norm(a) == norm(b)
}

/// One `singleValueExtendedProperties` entry as Graph returns it.
#[derive(Deserialize)]
pub struct PropertyValue {
    pub id: String,
    #[serde(default)]
    pub value: String,
}

/// `PATCH /messages/{id}`: only the fields that must change.
#[derive(Serialize, Default, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MessagePatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_read: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flag: Option<FollowupFlag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// cutover's stamp, on messages written with importMime.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub single_value_extended_properties: Option<Vec<ExtendedProperty>>,
}

impl MessagePatch {
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        *self == MessagePatch::default()
    }
}

/// The JSON form of a message for `POST /mailFolders/{id}/messages`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internet_message_id: Option<String>,
    pub subject: String,
    pub body: ItemBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Recipient>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<Recipient>,
    pub to_recipients: Vec<Recipient>,
    pub cc_recipients: Vec<Recipient>,
    pub bcc_recipients: Vec<Recipient>,
    pub reply_to: Vec<Recipient>,
    /// "low", "normal" or "high".
    pub importance: &'static str,
    pub is_read: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flag: Option<FollowupFlag>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    pub single_value_extended_properties: Vec<ExtendedProperty>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<FileAttachment>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemBody {
    /// "text" or "html".
    pub content_type: &'static str,
    pub content: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    pub email_address: EmailAddress,
}

#[derive(Serialize)]
pub struct EmailAddress {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub address: String,
}

/// A MAPI property set at creation, e.g. `{"id":"SystemTime 0x0E06","value":"2019-05-01T10:00:00Z"}`.
#[derive(Serialize, Debug, PartialEq)]
pub struct ExtendedProperty {
    pub id: &'static str,
    pub value: String,
}

/// `#microsoft.graph.fileAttachment`, inline in the create request or
/// posted to `/messages/{id}/attachments`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileAttachment {
    #[serde(rename = "@odata.type")]
    pub odata_type: &'static str,
    pub name: String,
    pub content_type: String,
    pub is_inline: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_id: Option<String>,
    /// Base64 of the attachment's bytes.
    pub content_bytes: String,
}

/// `POST /messages/{id}/attachments/createUploadSession`.
#[derive(Serialize)]
pub struct UploadSessionRequest<'a> {
    #[serde(rename = "AttachmentItem")]
    pub attachment_item: AttachmentItem<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentItem<'a> {
    pub attachment_type: &'static str,
    pub name: &'a str,
    pub size: u64,
    pub content_type: &'a str,
    pub is_inline: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_id: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadSession {
    pub upload_url: String,
}

/// One page of `GET /messages/{id}/attachments?$select=id,name,size`.
#[derive(Deserialize)]
pub struct AttachmentPage {
    #[serde(default)]
    pub value: Vec<ListedAttachment>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
}

/// An attachment as a listing shows it.
#[derive(Deserialize)]
pub struct ListedAttachment {
    pub id: String,
    /// `#microsoft.graph.fileAttachment`, `…itemAttachment`, …
    #[serde(rename = "@odata.type", default)]
    pub odata_type: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub size: u64,
}
